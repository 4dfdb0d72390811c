#include "model_runner.hpp"

#include <algorithm>

#include "ctm/model/small_batch_linear.hpp"

namespace ctm::engine {

ModelRunner::ModelRunner(model::Transformer& model) : model_(model) {
  if (model::RowDecoder::applies(model)) rows_ = std::make_unique<model::RowDecoder>(model);
  // Chunks the small-batch kernel takes (row-independent results); elsewhere the whole prompt at once.
  const bool cpu32 = model.device().is_cpu() && model.dtype() == torch::kFloat32;
  chunk_ = cpu32 ? std::min<int64_t>(64, model::kSmallBatchMaxRows) : int64_t{1} << 40;
}

torch::Tensor ModelRunner::hidden(const std::vector<int64_t>& ids, const std::vector<int64_t>& positions,
                                  SharedPrefixCache& cache, bool one_sequence) {
  if (rows_) return rows_->forward_hidden(ids, positions, cache);
  const int64_t n = static_cast<int64_t>(ids.size());
  const auto shape = one_sequence ? std::vector<int64_t>{1, n} : std::vector<int64_t>{n, 1};
  const auto ids_t = torch::tensor(ids, torch::kInt64).view(shape).to(model_.device());
  const auto pos_t = torch::tensor(positions, torch::kInt64).view(shape).to(model_.device());
  const auto h = model_.forward_hidden(ids_t, pos_t, cache);  // [1, n, D] or [n, 1, D]
  return h.reshape({n, h.size(2)});
}

torch::Tensor ModelRunner::logits(const torch::Tensor& hidden_RD, bool on_host) {
  const auto out = rows_ ? rows_->logits(hidden_RD) : model_.logits(hidden_RD);
  return (on_host ? out.to(torch::kCPU, torch::kFloat32) : out.to(torch::kFloat32)).contiguous();
}

torch::Tensor ModelRunner::extend(SharedPrefixCache& cache, const BlockList& blocks, int64_t start,
                                  const int32_t* ids, int64_t count, int64_t first_logit) {
  std::vector<torch::Tensor> rows;
  for (int64_t c0 = 0; c0 < count; c0 += chunk_) {
    const int64_t n = std::min(chunk_, count - c0);
    std::vector<int64_t> chunk_ids(ids + c0, ids + c0 + n), positions(n);
    for (int64_t t = 0; t < n; ++t) positions[t] = start + c0 + t;
    cache.begin_extend(blocks, start + c0);
    const auto h = hidden(chunk_ids, positions, cache, /*one_sequence=*/true);  // [n, D]
    const int64_t from = std::max<int64_t>(first_logit - c0, 0);
    if (from < n) rows.push_back(logits(h.narrow(0, from, n - from), /*on_host=*/true));
  }
  if (rows.empty()) return {};
  return rows.size() == 1 ? rows[0] : torch::cat(rows, 0);
}

torch::Tensor ModelRunner::decode(SharedPrefixCache& cache, std::vector<SharedPrefixCache::Slot> slots,
                                  const std::vector<int64_t>& ids, const std::vector<int64_t>& positions) {
  cache.begin_decode(std::move(slots));
  return logits(hidden(ids, positions, cache, /*one_sequence=*/false), /*on_host=*/false);  // [S, V]
}

}  // namespace ctm::engine
