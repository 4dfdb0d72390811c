#include "ctm/model/logprobs.hpp"

#include <algorithm>

#include "ctm/core/error.hpp"

namespace ctm::model {

PaddedBatch pad_batch(const std::vector<std::vector<int64_t>>& seqs, torch::Device device, int64_t pad_id) {
  CTM_CHECK(!seqs.empty(), "pad_batch: empty batch");
  const int64_t B = static_cast<int64_t>(seqs.size());
  int64_t T = 0;
  for (const auto& s : seqs) T = std::max<int64_t>(T, static_cast<int64_t>(s.size()));
  CTM_CHECK(T > 0, "pad_batch: every sequence is empty");
  auto ids = torch::full({B, T}, pad_id, torch::kInt64);
  auto lengths = torch::empty({B}, torch::kInt64);
  auto ids_a = ids.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[b];
    for (std::size_t t = 0; t < s.size(); ++t) ids_a[b][t] = s[t];
    lengths[b] = static_cast<int64_t>(s.size());
  }
  PaddedBatch out;
  out.ids_BT = ids.to(device);
  out.lengths_B = lengths.to(device);
  out.positions_BT = torch::arange(T, torch::dtype(torch::kInt64).device(device)).unsqueeze(0).expand({B, T});
  out.valid_BT = out.positions_BT.lt(out.lengths_B.unsqueeze(1));
  return out;
}

torch::Tensor gather_logprobs(const torch::Tensor& logits_BTV, const torch::Tensor& target_BT) {
  const auto logp = torch::log_softmax(logits_BTV.to(accum_dtype(logits_BTV.scalar_type())), -1);
  return logp.gather(-1, target_BT.unsqueeze(-1)).squeeze(-1);
}

torch::Tensor sequence_logprobs(Transformer& model, const PaddedBatch& batch, int64_t chunk) {
  const int64_t B = batch.ids_BT.size(0), T = batch.ids_BT.size(1);
  if (T < 2) return torch::zeros({B, 0}, torch::dtype(torch::kFloat32).device(batch.ids_BT.device()));
  CausalAttention attn(batch.valid_BT);
  const auto hidden_BTD = model.forward_hidden(batch.ids_BT, batch.positions_BT, attn);
  std::vector<torch::Tensor> parts;
  for (int64_t t0 = 0; t0 < T - 1; t0 += chunk) {
    const int64_t n = std::min(chunk, T - 1 - t0);
    const auto logits = model.logits(hidden_BTD.narrow(1, t0, n));
    parts.push_back(gather_logprobs(logits, batch.ids_BT.narrow(1, t0 + 1, n)));
  }
  auto logp_BT1 = torch::cat(parts, 1);
  // Zero where the target token is padding (t + 1 >= length).
  const auto target_valid = batch.valid_BT.narrow(1, 1, T - 1);
  return logp_BT1.masked_fill(target_valid.logical_not(), 0.0);
}

}  // namespace ctm::model
