#include "ctm/train/batching.hpp"

#include <algorithm>
#include <numeric>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"

namespace ctm::train {

std::vector<std::vector<int64_t>> length_grouped_batches(const std::vector<int64_t>& lengths,
                                                         int64_t batch_size, int64_t megabatch, uint64_t seed,
                                                         int64_t epoch) {
  CTM_CHECK(batch_size > 0 && megabatch > 0, "batch size ", batch_size, " and mega-batch ", megabatch,
            " must be positive");
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  Rng rng(mix_seed(seed, static_cast<uint64_t>(epoch), 0));
  rng.shuffle(order);
  const size_t mega = static_cast<size_t>(batch_size * megabatch);
  std::vector<std::vector<int64_t>> batches;
  for (size_t begin = 0; begin < order.size(); begin += mega) {
    const size_t end = std::min(order.size(), begin + mega);
    // stable: equal lengths keep their shuffled order, so the result does not depend on the sort
    // implementation
    std::stable_sort(order.begin() + begin, order.begin() + end,
                     [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    for (size_t b = begin; b < end; b += batch_size)
      batches.emplace_back(order.begin() + b, order.begin() + std::min(end, b + batch_size));
  }
  if (megabatch > 1) rng.shuffle(batches);
  return batches;
}

std::vector<std::vector<int64_t>> sorted_batches(const std::vector<int64_t>& lengths, int64_t batch_size) {
  CTM_CHECK(batch_size > 0, "batch size ", batch_size, " must be positive");
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<int64_t>> batches;
  for (size_t b = 0; b < order.size(); b += batch_size)
    batches.emplace_back(order.begin() + b, order.begin() + std::min(order.size(), b + batch_size));
  return batches;
}

LmBatch collate_lm(const std::vector<const LmExample*>& examples, int32_t pad_id) {
  CTM_CHECK(!examples.empty(), "cannot collate an empty batch");
  LmBatch batch;
  int64_t max_len = 0;
  for (const auto* ex : examples) {
    CTM_CHECK(ex->tokens.size() == ex->is_target.size(), "training example has ", ex->tokens.size(),
              " tokens but ", ex->is_target.size(), " loss-mask entries");
    CTM_CHECK(!ex->tokens.empty(), "training example has no tokens");
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(ex->tokens.size()));
    batch.lengths.push_back(static_cast<int64_t>(ex->tokens.size()));
  }
  const int64_t B = static_cast<int64_t>(examples.size()), T = max_len;
  auto ids = torch::full({B, T}, static_cast<int64_t>(pad_id), torch::kInt64);
  auto targets = torch::full({B, T}, kIgnoreIndex, torch::kInt64);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto targets_a = targets.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& ex = *examples[b];
    const int64_t n = static_cast<int64_t>(ex.tokens.size());
    for (int64_t t = 0; t < n; ++t) ids_a[b][t] = ex.tokens[t];
    for (int64_t t = 0; t + 1 < n; ++t) {
      if (ex.is_target[t + 1]) {
        targets_a[b][t] = ex.tokens[t + 1];
        ++batch.num_targets;
      }
    }
  }
  batch.ids_BT = ids;
  batch.targets_BT = targets;
  batch.positions_BT = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T}).contiguous();
  return batch;
}

torch::Tensor summed_nll(const torch::Tensor& logits_NV, const torch::Tensor& targets_N) {
  auto logits = logits_NV.scalar_type() == torch::kFloat64 ? logits_NV : logits_NV.to(torch::kFloat32);
  return torch::nn::functional::cross_entropy(
      logits, targets_N,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kSum));
}

}  // namespace ctm::train
