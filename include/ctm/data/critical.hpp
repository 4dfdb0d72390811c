// The paper's critical-token rule and pass@k (DESIGN.md §2 "Rollout sampling and critical tokens"), on the
// per-token rollout counts of one trajectory (io::Trajectory's with/without arrays).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace ctm::data {

// Walks the prefixes from shortest to longest (the positions with rollouts, total > 0): the first whose
// rollouts are all wrong (0 correct) becomes the candidate; a later prefix with more than `max_correct`
// (3) correct drops it (it is remembered as the last one) and the walk goes on. The result is the current
// candidate, else the last one dropped, else -1 (none). Indices are those of the arrays.
int32_t critical_position(const std::vector<int16_t>& correct, const std::vector<int16_t>& total,
                          int64_t max_correct = 3);

// The unbiased pass@k of one item with c correct of n samples: 1 - C(n - c, k) / C(n, k), for 1 <= k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

// pass@k for k = 1..max_k averaged over items given as (n, c); an item counts for the k with k <= n. A k no
// item reaches is nullopt.
std::vector<std::optional<double>> mean_pass_at_k(const std::vector<std::pair<int64_t, int64_t>>& items,
                                                  int64_t max_k);

}  // namespace ctm::data
