#include "ctm/train/preference.hpp"

#include <algorithm>

#include "ctm/core/error.hpp"
#include "ctm/model/logprobs.hpp"

namespace ctm::train {
namespace {

// [B, T] float32 from per-row vectors (row b's values at positions 0..len-1, `fill` beyond).
torch::Tensor rows_tensor(const std::vector<const std::vector<float>*>& rows, int64_t T, float fill,
                          torch::Device device) {
  auto out = torch::full({static_cast<int64_t>(rows.size()), T}, fill, torch::kFloat32);
  auto a = out.accessor<float, 2>();
  for (size_t b = 0; b < rows.size(); ++b)
    for (size_t j = 0; j < rows[b]->size() && static_cast<int64_t>(j) < T; ++j) a[b][j] = (*rows[b])[j];
  return out.to(device);
}

// 1 on positions [start, length) of each row.
torch::Tensor response_mask(const std::vector<int64_t>& starts, const std::vector<int64_t>& lengths,
                            int64_t T, torch::Device device) {
  auto out = torch::zeros({static_cast<int64_t>(starts.size()), T}, torch::kFloat32);
  for (size_t b = 0; b < starts.size(); ++b)
    out[static_cast<int64_t>(b)].narrow(0, starts[b], lengths[b] - starts[b]).fill_(1.0f);
  return out.to(device);
}

// log π(token_j | tokens_<j) at every absolute position j of a right-padded batch (0 at j = 0 and on
// padding).
torch::Tensor absolute_logprobs(model::Transformer& model, const model::PaddedBatch& batch) {
  const auto lp = model::sequence_logprobs(model, batch);  // [B, T-1]: entry t scores token t+1
  return torch::cat({torch::zeros({lp.size(0), 1}, lp.options()), lp}, 1);
}

}  // namespace

PreferenceLoss parse_preference_loss(const std::string& name) {
  if (name == "dpo") return PreferenceLoss::DPO;
  if (name == "rpo") return PreferenceLoss::RPO;
  if (name == "cdpo") return PreferenceLoss::CDPO;
  throw Error(str("unknown loss '", name, "' (dpo | rpo | cdpo)"));
}

CdpoForm parse_cdpo_form(const std::string& name) {
  if (name == "sequence") return CdpoForm::Sequence;
  if (name == "token") return CdpoForm::Token;
  throw Error(str("unknown cDPO loss form '", name, "' (sequence | token)"));
}

const char* preference_loss_name(PreferenceLoss loss) {
  return loss == PreferenceLoss::DPO ? "dpo" : loss == PreferenceLoss::RPO ? "rpo" : "cdpo";
}

const char* cdpo_form_name(CdpoForm form) {
  return form == CdpoForm::Sequence ? "sequence" : "token";
}

LossTerms preference_loss(const SideLogps& chosen, const SideLogps& rejected, const torch::Tensor& weights_BT,
                          const PreferenceOptions& o) {
  CTM_CHECK(chosen.policy_BT.sizes() == rejected.policy_BT.sizes(),
            "preference_loss: chosen and rejected must be padded to the same [B, T]");
  const auto dc_BT = (chosen.policy_BT - chosen.reference_BT) * chosen.mask_BT;
  const auto dr_BT = (rejected.policy_BT - rejected.reference_BT) * rejected.mask_BT;
  const bool weighted = o.loss == PreferenceLoss::CDPO;
  const auto wdr_BT = weighted ? weights_BT * dr_BT : dr_BT;
  torch::Tensor loss_B;
  if (weighted && o.form == CdpoForm::Token) {
    loss_B = -torch::log_sigmoid(o.beta * (dc_BT - wdr_BT)).mean(1);
  } else {
    loss_B = -torch::log_sigmoid(o.beta * (dc_BT.sum(1) - wdr_BT.sum(1)));
  }
  const auto nll_B = -(chosen.policy_BT * chosen.mask_BT).sum(1) / chosen.mask_BT.sum(1).clamp_min(1.0);
  if (o.loss == PreferenceLoss::RPO) loss_B = loss_B + o.rpo_alpha * nll_B;

  LossTerms terms;
  terms.sum = loss_B.sum();
  terms.count = static_cast<double>(loss_B.size(0));
  torch::NoGradGuard no_grad;
  const auto reward_c = o.beta * dc_BT.sum(1).detach(), reward_r = o.beta * dr_BT.sum(1).detach();
  terms.metrics["rewards/chosen"] = reward_c.sum().item<double>();
  terms.metrics["rewards/rejected"] = reward_r.sum().item<double>();
  terms.metrics["rewards/accuracies"] = reward_c.gt(reward_r).sum().item<double>();
  terms.metrics["rewards/margins"] = (reward_c - reward_r).sum().item<double>();
  terms.metrics["nll"] = nll_B.detach().sum().item<double>();
  return terms;
}

namespace {

using ReferenceRow = std::pair<const std::vector<int32_t>*, std::vector<float>*>;  // tokens, log-probs

// Forwards rows [begin, end) as one batch and stores their log-probabilities.
void forward_rows(model::Transformer& model, std::vector<ReferenceRow>& rows, size_t begin, size_t end) {
  std::vector<std::vector<int64_t>> seqs;
  for (size_t k = begin; k < end; ++k) seqs.emplace_back(rows[k].first->begin(), rows[k].first->end());
  const auto lp =
      absolute_logprobs(model, model::pad_batch(seqs, model.device())).to(torch::kCPU).contiguous();
  for (size_t k = begin; k < end; ++k) {
    const float* row = lp[static_cast<int64_t>(k - begin)].data_ptr<float>();
    rows[k].second->assign(row, row + seqs[k - begin].size());
  }
}

// Every rank's rows on every rank: each rank's rows hold values where it computed them and zeros elsewhere,
// so one all-reduce of the concatenation gives each value plus zeros, that is the value itself.
void combine_rows(std::vector<ReferenceRow>& rows, Collective& collective) {
  int64_t total = 0;
  for (const auto& r : rows) total += static_cast<int64_t>(r.first->size());
  auto flat = torch::zeros({total}, torch::kFloat32);
  float* p = flat.data_ptr<float>();
  for (const auto& r : rows) {
    std::copy(r.second->begin(), r.second->end(), p);
    p += r.first->size();
  }
  collective.all_reduce_sum(flat);
  p = flat.data_ptr<float>();
  for (auto& r : rows) {
    r.second->assign(p, p + r.first->size());
    p += r.first->size();
  }
}

}  // namespace

ReferenceLogps reference_logps(model::Transformer& model, const std::vector<PreferencePair>& pairs,
                               Collective* collective, int64_t batch_tokens) {
  ReferenceLogps out;
  out.chosen.resize(pairs.size());
  out.rejected.resize(pairs.size());
  torch::NoGradGuard no_grad;
  const bool was_enabled = model.lora_enabled(), was_training = model.training();
  model.set_lora_enabled(false);  // the reference is the base
  model.set_training(false);
  std::vector<ReferenceRow> rows;
  for (size_t i = 0; i < pairs.size(); ++i) {
    rows.push_back({&pairs[i].chosen, &out.chosen[i]});
    rows.push_back({&pairs[i].rejected, &out.rejected[i]});
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.first->size() > b.first->size(); });
  std::vector<size_t> starts;  // batch b is rows [starts[b], starts[b + 1])
  for (size_t start = 0; start < rows.size();) {
    starts.push_back(start);
    const int64_t longest = static_cast<int64_t>(rows[start].first->size());
    start = std::min(rows.size(), start + std::max<size_t>(1, static_cast<size_t>(batch_tokens / longest)));
  }
  starts.push_back(rows.size());
  const size_t batches = starts.size() - 1;
  const size_t world = collective ? static_cast<size_t>(collective->size()) : 1;
  const size_t rank = collective ? static_cast<size_t>(collective->rank()) : 0;
  for (size_t round = 0; round < (batches + world - 1) / world; ++round) {
    const size_t b = round * world + rank;
    if (b < batches) {
      forward_rows(model, rows, starts[b], starts[b + 1]);
    } else {  // no batch of mine: a forward of the shortest row all the same (a sharded model's gathers)
      std::vector<float> dropped;
      std::vector<ReferenceRow> one = {{rows.back().first, &dropped}};
      forward_rows(model, one, 0, 1);
    }
  }
  if (world > 1) combine_rows(rows, *collective);
  model.set_lora_enabled(was_enabled);
  model.set_training(was_training);
  return out;
}

LossFn preference_loss_fn(model::Transformer& model, const std::vector<PreferencePair>& pairs,
                          const ReferenceLogps& reference, const PreferenceOptions& options, int32_t pad_id) {
  CTM_CHECK(reference.chosen.size() == pairs.size() && reference.rejected.size() == pairs.size(),
            "preference_loss_fn: reference log-probabilities of ", reference.chosen.size(), " pairs for ",
            pairs.size());
  return [&model, &pairs, &reference, options, pad_id](const std::vector<int64_t>& ids, bool training) {
    model.set_training(training);
    const int64_t B = static_cast<int64_t>(ids.size());
    std::vector<std::vector<int64_t>> seqs;  // chosen rows, then rejected rows: one padded batch
    std::vector<int64_t> starts_c, starts_r, lengths_c, lengths_r;
    std::vector<const std::vector<float>*> ref_c, ref_r, weights;
    const std::vector<float> no_weights;
    for (int64_t i : ids) {
      const PreferencePair& p = pairs.at(static_cast<size_t>(i));
      seqs.emplace_back(p.chosen.begin(), p.chosen.end());
      starts_c.push_back(p.chosen_start);
      lengths_c.push_back(static_cast<int64_t>(p.chosen.size()));
      ref_c.push_back(&reference.chosen[i]);
    }
    for (int64_t i : ids) {
      const PreferencePair& p = pairs.at(static_cast<size_t>(i));
      seqs.emplace_back(p.rejected.begin(), p.rejected.end());
      starts_r.push_back(p.rejected_start);
      lengths_r.push_back(static_cast<int64_t>(p.rejected.size()));
      ref_r.push_back(&reference.rejected[i]);
      weights.push_back(p.rejected_weights.empty() ? &no_weights : &p.rejected_weights);
    }
    const auto device = model.device();
    const auto lp_2BT = absolute_logprobs(model, model::pad_batch(seqs, device, pad_id));
    const int64_t T = lp_2BT.size(1);
    SideLogps chosen{lp_2BT.narrow(0, 0, B), rows_tensor(ref_c, T, 0.0f, device),
                     response_mask(starts_c, lengths_c, T, device)};
    SideLogps rejected{lp_2BT.narrow(0, B, B), rows_tensor(ref_r, T, 0.0f, device),
                       response_mask(starts_r, lengths_r, T, device)};
    return preference_loss(chosen, rejected, rows_tensor(weights, T, 1.0f, device), options);
  };
}

std::vector<int64_t> pair_lengths(const std::vector<PreferencePair>& pairs) {
  std::vector<int64_t> out;
  out.reserve(pairs.size());
  for (const auto& p : pairs)
    out.push_back(static_cast<int64_t>(std::max(p.chosen.size(), p.rejected.size())));
  return out;
}

}  // namespace ctm::train
