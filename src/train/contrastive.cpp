#include "ctm/train/contrastive.hpp"

#include <algorithm>

#include "ctm/core/error.hpp"
#include "ctm/model/logprobs.hpp"

namespace ctm::train {

std::vector<TokenScores> contrastive_scores(model::Transformer& model, const model::LoraAdapters& positive,
                                            const model::LoraAdapters& negative,
                                            const std::vector<std::vector<int64_t>>& seqs, double beta) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.training(), was_enabled = model.lora_enabled();
  model.set_training(false);
  model.set_lora_enabled(true);
  const auto batch = model::pad_batch(seqs, model.device());
  auto hidden_of = [&](const model::LoraAdapters& adapters) {
    model::attach_lora(model, adapters);
    model::CausalAttention attn(batch.valid_BT);
    return model.forward_hidden(batch.ids_BT, batch.positions_BT, attn);
  };
  const auto hidden_pos_BTD = hidden_of(positive), hidden_neg_BTD = hidden_of(negative);
  model.set_training(was_training);
  model.set_lora_enabled(was_enabled);

  const int64_t B = batch.ids_BT.size(0), T = batch.ids_BT.size(1), chunk = 256;
  std::vector<torch::Tensor> ce, lp_pos, lp_neg;
  for (int64_t t0 = 0; t0 < T - 1; t0 += chunk) {
    const int64_t n = std::min(chunk, T - 1 - t0);
    const auto logits_pos = model.logits(hidden_pos_BTD.narrow(1, t0, n));  // [B, n, V] float32
    const auto logits_neg = model.logits(hidden_neg_BTD.narrow(1, t0, n));
    const auto target = batch.ids_BT.narrow(1, t0 + 1, n);
    const auto cd_logits = (1.0 + beta) * logits_pos - beta * logits_neg;
    ce.push_back(model::gather_logprobs(cd_logits, target).exp());
    lp_pos.push_back(model::gather_logprobs(logits_pos, target));
    lp_neg.push_back(model::gather_logprobs(logits_neg, target));
  }
  auto as_cpu = [&](std::vector<torch::Tensor>& parts) {
    return T > 1 ? torch::cat(parts, 1).to(torch::kCPU, torch::kFloat32).contiguous()
                 : torch::zeros({B, 0}, torch::kFloat32);
  };
  const auto ce_BT = as_cpu(ce), pos_BT = as_cpu(lp_pos), neg_BT = as_cpu(lp_neg);
  std::vector<TokenScores> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const size_t len = seqs[b].size();
    TokenScores& s = out[b];
    s.ce_prob.assign(1, 1.0f);
    s.logp_pos.assign(1, 0.0f);
    s.logp_neg.assign(1, 0.0f);
    if (len < 2) continue;
    const float* c = ce_BT[b].data_ptr<float>();
    const float* p = pos_BT[b].data_ptr<float>();
    const float* q = neg_BT[b].data_ptr<float>();
    s.ce_prob.insert(s.ce_prob.end(), c, c + len - 1);
    s.logp_pos.insert(s.logp_pos.end(), p, p + len - 1);
    s.logp_neg.insert(s.logp_neg.end(), q, q + len - 1);
  }
  return out;
}

}  // namespace ctm::train
