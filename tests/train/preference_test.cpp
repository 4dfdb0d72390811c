// The DPO-family losses against hand computations, and the CE score against two explicit forward passes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/train/contrastive.hpp"
#include "ctm/train/preference.hpp"

namespace ctm::train {
namespace {

double log_sigmoid(double x) {
  return -std::log1p(std::exp(-x));
}

torch::Tensor t2(const std::vector<std::vector<double>>& rows) {
  auto out = torch::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())},
                          torch::kFloat32);
  for (size_t b = 0; b < rows.size(); ++b)
    for (size_t j = 0; j < rows[b].size(); ++j) out[b][j] = rows[b][j];
  return out;
}

// One pair, T = 5: prompt at 0..1, chosen response (3 tokens, the last EOS) at 2..4, rejected response
// at 2..3 (then padding at 4).
struct HandPair {
  std::vector<double> pc{0, -9, -1.0, -2.0, -0.5}, rc{0, -9, -1.5, -2.5, -0.7};
  std::vector<double> pr{0, -9, -0.8, -3.0, 0}, rr{0, -9, -1.0, -2.0, 0};
  std::vector<double> mc{0, 0, 1, 1, 1}, mr{0, 0, 1, 1, 0};
  std::vector<double> w{1, 1, 0.1, 0.9, 1};
  SideLogps chosen() const { return {t2({pc}), t2({rc}), t2({mc})}; }
  SideLogps rejected() const { return {t2({pr}), t2({rr}), t2({mr})}; }
  double dc(int j) const { return mc[j] * (pc[j] - rc[j]); }
  double dr(int j) const { return mr[j] * (pr[j] - rr[j]); }
};

TEST(PreferenceLoss, SequenceFormsMatchHandValues) {
  const HandPair h;
  const double beta = 0.1;
  double c = 0, r = 0, rw = 0;
  for (int j = 0; j < 5; ++j) {
    c += h.dc(j);
    r += h.dr(j);
    rw += h.w[j] * h.dr(j);
  }
  PreferenceOptions o;
  o.beta = beta;
  o.loss = PreferenceLoss::DPO;
  auto dpo = preference_loss(h.chosen(), h.rejected(), t2({h.w}), o);
  EXPECT_NEAR(dpo.sum.item<double>(), -log_sigmoid(beta * (c - r)), 1e-6);  // DPO ignores the weights
  EXPECT_EQ(dpo.count, 1.0);
  EXPECT_NEAR(dpo.metrics["rewards/chosen"], beta * c, 1e-6);
  EXPECT_NEAR(dpo.metrics["rewards/rejected"], beta * r, 1e-6);
  EXPECT_NEAR(dpo.metrics["rewards/margins"], beta * (c - r), 1e-6);
  EXPECT_EQ(dpo.metrics["rewards/accuracies"], c > r ? 1.0 : 0.0);

  o.loss = PreferenceLoss::CDPO;
  o.form = CdpoForm::Sequence;
  auto cdpo = preference_loss(h.chosen(), h.rejected(), t2({h.w}), o);
  EXPECT_NEAR(cdpo.sum.item<double>(), -log_sigmoid(beta * (c - rw)), 1e-6);
  // With w = 1 the sequence form is plain DPO.
  auto ones = preference_loss(h.chosen(), h.rejected(), torch::ones({1, 5}), o);
  EXPECT_NEAR(ones.sum.item<double>(), dpo.sum.item<double>(), 1e-7);

  o.loss = PreferenceLoss::RPO;
  o.rpo_alpha = 0.7;
  auto rpo = preference_loss(h.chosen(), h.rejected(), t2({h.w}), o);
  const double nll = -(h.pc[2] + h.pc[3] + h.pc[4]) / 3.0;  // the chosen response's mean NLL, EOS included
  EXPECT_NEAR(rpo.sum.item<double>(), -log_sigmoid(beta * (c - r)) + 0.7 * nll, 1e-6);
  EXPECT_NEAR(rpo.metrics["nll"], nll, 1e-6);
}

TEST(PreferenceLoss, TokenFormIsTheMeanOverAllPositions) {
  const HandPair h;
  const double beta = 0.5;
  double expected = 0;
  for (int j = 0; j < 5; ++j) expected += -log_sigmoid(beta * (h.dc(j) - h.w[j] * h.dr(j)));
  expected /= 5;  // prompt and padding positions count too (their terms are log 2)
  PreferenceOptions o;
  o.beta = beta;
  o.loss = PreferenceLoss::CDPO;
  o.form = CdpoForm::Token;
  auto t = preference_loss(h.chosen(), h.rejected(), t2({h.w}), o);
  EXPECT_NEAR(t.sum.item<double>(), expected, 1e-6);
}

TEST(PreferenceLoss, ZeroWeightsTakeTheRejectedTermOut) {
  HandPair h;
  auto pr = t2({h.pr}).requires_grad_(true);
  PreferenceOptions o;
  o.loss = PreferenceLoss::CDPO;
  auto w = t2({{1, 1, 0, 1, 1}});  // rejected token 2 weighs nothing
  auto terms = preference_loss(h.chosen(), SideLogps{pr, t2({h.rr}), t2({h.mr})}, w, o);
  terms.sum.backward();
  const auto g = pr.grad();
  EXPECT_EQ(g[0][2].item<double>(), 0.0);
  EXPECT_GT(g[0][3].item<double>(), 0.0);  // lowering the rejected token's log-prob lowers the loss
  EXPECT_EQ(g[0][4].item<double>(), 0.0);  // padding
}

std::string fixture_dir() {
  return std::string(CTM_TEST_FIXTURES) + "/model/llama3-tiny-random";
}

// Random non-zero adapters on every projection.
model::LoraAdapters random_adapters(model::Transformer& m, uint64_t seed) {
  model::LoraConfig cfg;
  cfg.r = 4;
  cfg.alpha = 8;
  cfg.target_modules = model::projection_names();
  model::add_lora(m, cfg, seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& [name, t] : m.named_lora_parameters()) t.normal_(0.0, 0.05);
  return model::detach_lora(m);
}

TEST(PreferenceLossFn, EqualsExplicitPolicyAndReferenceForwards) {
  auto m = model::load_model(fixture_dir(), torch::kCPU, torch::kFloat32);
  const auto adapters = random_adapters(*m, 3);
  model::attach_lora(*m, adapters);
  std::vector<PreferencePair> pairs(2);
  pairs[0] = {{1, 5, 6, 7, 8, 9}, {1, 5, 6, 10, 11}, 3, 3, {1, 1, 1, 0.2f, 0.7f}};
  pairs[1] = {{1, 12, 13, 14}, {1, 12, 13, 15, 16, 17, 18}, 2, 2, {}};
  const ReferenceLogps ref = reference_logps(*m, pairs);
  PreferenceOptions o;
  o.loss = PreferenceLoss::CDPO;
  o.beta = 0.3;
  LossFn fn = preference_loss_fn(*m, pairs, ref, o, 0);
  const double loss = fn({0, 1}, false).sum.item<double>();

  // Independently: each sequence alone, policy with LoRA and reference without, summed by hand.
  auto seq_logps = [&](const std::vector<int32_t>& s, bool lora) {
    torch::NoGradGuard no_grad;
    m->set_lora_enabled(lora);
    const auto lp = model::sequence_logprobs(
        *m, model::pad_batch({std::vector<int64_t>(s.begin(), s.end())}, torch::kCPU));
    m->set_lora_enabled(true);
    std::vector<double> out{0.0};  // absolute positions
    for (int64_t t = 0; t < lp.size(1); ++t) out.push_back(lp[0][t].item<double>());
    return out;
  };
  double expected = 0;
  for (const auto& p : pairs) {
    const auto pc = seq_logps(p.chosen, true), rc = seq_logps(p.chosen, false);
    const auto pr = seq_logps(p.rejected, true), rr = seq_logps(p.rejected, false);
    double c = 0, r = 0;
    for (size_t j = p.chosen_start; j < p.chosen.size(); ++j) c += pc[j] - rc[j];
    for (size_t j = p.rejected_start; j < p.rejected.size(); ++j)
      r += (p.rejected_weights.empty() ? 1.0 : p.rejected_weights[j]) * (pr[j] - rr[j]);
    expected += -log_sigmoid(0.3 * (c - r));
  }
  EXPECT_NEAR(loss, expected, 1e-5);
  // The reference is the base: it does not move with the adapters.
  EXPECT_NEAR(ref.chosen[0][3], seq_logps(pairs[0].chosen, false)[3], 1e-6);
}

TEST(ContrastiveScores, EqualTwoExplicitForwardPasses) {
  auto m = model::load_model(fixture_dir(), torch::kCPU, torch::kFloat32);
  const auto pos = random_adapters(*m, 1), neg = random_adapters(*m, 2);
  const std::vector<std::vector<int64_t>> seqs = {{1, 5, 6, 7, 8, 9, 10}, {1, 20, 21}};
  const double beta = 1.0;
  const auto scores = contrastive_scores(*m, pos, neg, seqs, beta);
  ASSERT_EQ(scores.size(), 2u);
  auto logits_of = [&](const model::LoraAdapters& a, const std::vector<int64_t>& s) {
    torch::NoGradGuard no_grad;
    model::attach_lora(*m, a);
    model::CausalAttention attn;
    const int64_t T = static_cast<int64_t>(s.size());
    return m->forward(torch::tensor(s).view({1, T}), torch::arange(T).view({1, T}), attn)[0].to(
        torch::kFloat64);
  };
  double worst = 0;
  for (size_t b = 0; b < seqs.size(); ++b) {
    const auto lp = logits_of(pos, seqs[b]), ln = logits_of(neg, seqs[b]);
    ASSERT_EQ(scores[b].ce_prob.size(), seqs[b].size());
    EXPECT_EQ(scores[b].ce_prob[0], 1.0f);
    EXPECT_EQ(scores[b].logp_pos[0], 0.0f);
    for (size_t t = 1; t < seqs[b].size(); ++t) {
      const auto cd = torch::softmax((1 + beta) * lp[t - 1] - beta * ln[t - 1], -1);
      const int64_t x = seqs[b][t];
      worst = std::max(worst, std::abs(scores[b].ce_prob[t] - cd[x].item<double>()));
      worst = std::max(worst,
                       std::abs(scores[b].logp_pos[t] - torch::log_softmax(lp[t - 1], -1)[x].item<double>()));
      worst = std::max(worst,
                       std::abs(scores[b].logp_neg[t] - torch::log_softmax(ln[t - 1], -1)[x].item<double>()));
    }
  }
  EXPECT_LT(worst, 1e-5) << "max abs error " << worst;
}

}  // namespace
}  // namespace ctm::train
