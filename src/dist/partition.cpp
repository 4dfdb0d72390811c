#include "ctm/dist/partition.hpp"

#include <algorithm>
#include <numeric>
#include <queue>

#include "ctm/core/error.hpp"

namespace ctm::dist {

std::pair<int64_t, int64_t> block_range(int64_t n, int rank, int size) {
  CTM_CHECK(size > 0 && rank >= 0 && rank < size, "bad rank ", rank, " of ", size);
  const int64_t base = n / size, extra = n % size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

std::vector<std::vector<int64_t>> balanced_partition(const std::vector<double>& costs, int size) {
  CTM_CHECK(size > 0, "partition over ", size, " ranks");
  std::vector<int64_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return costs[a] > costs[b]; });
  using Load = std::pair<double, int>;  // (load, rank): the least loaded rank, lowest rank on ties
  std::priority_queue<Load, std::vector<Load>, std::greater<Load>> heap;
  for (int r = 0; r < size; ++r) heap.push({0.0, r});
  std::vector<std::vector<int64_t>> parts(size);
  for (int64_t item : order) {
    auto [load, r] = heap.top();
    heap.pop();
    parts[r].push_back(item);
    heap.push({load + costs[item], r});
  }
  for (auto& p : parts) std::sort(p.begin(), p.end());
  return parts;
}

}  // namespace ctm::dist
