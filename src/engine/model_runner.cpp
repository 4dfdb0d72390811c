#include "model_runner.hpp"

#include <algorithm>

#include "ctm/model/small_batch_linear.hpp"

namespace ctm::engine {

ModelRunner::ModelRunner(model::Transformer& model) : model_(model) {
  // Chunks the small-batch kernel takes (row-independent results); elsewhere the whole prompt at once.
  const bool cpu32 = model.device().is_cpu() && model.dtype() == torch::kFloat32;
  chunk_ = cpu32 ? std::min<int64_t>(64, model::kSmallBatchMaxRows) : int64_t{1} << 40;
}

torch::Tensor ModelRunner::extend(SharedPrefixCache& cache, const BlockList& blocks, int64_t start,
                                  const int32_t* ids, int64_t count, int64_t first_logit) {
  const auto dev = model_.device();
  std::vector<torch::Tensor> rows;
  for (int64_t c0 = 0; c0 < count; c0 += chunk_) {
    const int64_t n = std::min(chunk_, count - c0);
    const auto ids_t =
        torch::tensor(std::vector<int64_t>(ids + c0, ids + c0 + n), torch::kInt64).view({1, n});
    const auto pos_t = torch::arange(start + c0, start + c0 + n, torch::kInt64).view({1, n});
    cache.begin_extend(blocks, start + c0);
    const auto hidden = model_.forward_hidden(ids_t.to(dev), pos_t.to(dev), cache)[0];  // [n, D]
    const int64_t from = std::max<int64_t>(first_logit - c0, 0);
    if (from < n) rows.push_back(model_.logits(hidden.narrow(0, from, n - from)).to(torch::kCPU));
  }
  if (rows.empty()) return {};
  return (rows.size() == 1 ? rows[0] : torch::cat(rows, 0)).to(torch::kFloat32).contiguous();
}

torch::Tensor ModelRunner::decode(SharedPrefixCache& cache, std::vector<SharedPrefixCache::Slot> slots,
                                  const std::vector<int64_t>& ids, const std::vector<int64_t>& positions) {
  const int64_t S = static_cast<int64_t>(slots.size());
  cache.begin_decode(std::move(slots));
  const auto ids_t = torch::tensor(ids, torch::kInt64).view({S, 1}).to(model_.device());
  const auto pos_t = torch::tensor(positions, torch::kInt64).view({S, 1}).to(model_.device());
  const auto hidden = model_.forward_hidden(ids_t, pos_t, cache);  // [S, 1, D]
  return model_.logits(hidden.view({S, hidden.size(2)})).to(torch::kCPU, torch::kFloat32).contiguous();
}

}  // namespace ctm::engine
