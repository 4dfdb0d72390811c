#include "ctm/data/critical.hpp"

#include <cassert>

#include "ctm/core/error.hpp"

namespace ctm::data {

int32_t critical_position(const std::vector<int16_t>& correct, const std::vector<int16_t>& total,
                          int64_t max_correct) {
  CTM_CHECK(correct.size() == total.size(), "critical_position: ", correct.size(), " correct counts for ",
            total.size(), " totals");
  int32_t candidate = -1, last = -1;
  for (size_t i = 0; i < total.size(); ++i) {
    if (total[i] <= 0) continue;  // no rollout from this prefix
    if (correct[i] == 0 && candidate < 0) {
      candidate = static_cast<int32_t>(i);
    } else if (correct[i] > max_correct && candidate >= 0) {
      last = candidate;
      candidate = -1;
    }
  }
  return candidate >= 0 ? candidate : last;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  CTM_CHECK(n >= 1 && c >= 0 && c <= n && k >= 1 && k <= n, "pass_at_k: need 0 <= c <= n and 1 <= k <= n (n ",
            n, ", c ", c, ", k ", k, ")");
  if (n - c < k) return 1.0;  // every k-subset holds a correct sample
  // C(n - c, k) / C(n, k) = prod_{j < k} (n - c - j) / (n - j): no factorial overflows.
  double none_correct = 1.0;
  for (int64_t j = 0; j < k; ++j) none_correct *= static_cast<double>(n - c - j) / static_cast<double>(n - j);
  return 1.0 - none_correct;
}

std::vector<std::optional<double>> mean_pass_at_k(const std::vector<std::pair<int64_t, int64_t>>& items,
                                                  int64_t max_k) {
  std::vector<std::optional<double>> out(static_cast<size_t>(max_k));
  for (int64_t k = 1; k <= max_k; ++k) {
    double sum = 0;
    int64_t count = 0;
    for (const auto& [n, c] : items) {
      if (n < k) continue;
      sum += pass_at_k(n, c, k);
      ++count;
    }
    if (count > 0) out[static_cast<size_t>(k - 1)] = sum / static_cast<double>(count);
  }
  return out;
}

}  // namespace ctm::data
