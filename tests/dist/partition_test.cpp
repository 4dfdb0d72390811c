#include <gtest/gtest.h>

#include <numeric>

#include "ctm/dist/partition.hpp"

TEST(Partition, BlockRangesCoverAllItemsOnce) {
  for (int size : {1, 2, 3, 7}) {
    for (int64_t n : {0, 1, 5, 100}) {
      int64_t next = 0;
      for (int r = 0; r < size; ++r) {
        auto [b, e] = ctm::dist::block_range(n, r, size);
        EXPECT_EQ(b, next);
        EXPECT_LE(e - b, n / size + 1);
        next = e;
      }
      EXPECT_EQ(next, n);
    }
  }
}

TEST(Partition, BalancedPartitionIsCompleteBalancedAndDeterministic) {
  std::vector<double> costs;
  for (int i = 0; i < 101; ++i) costs.push_back(1 + (i * 37) % 11);
  auto parts = ctm::dist::balanced_partition(costs, 4);
  std::vector<int> seen(costs.size(), 0);
  double max_load = 0, min_load = 1e9;
  for (const auto& p : parts) {
    double load = 0;
    for (size_t k = 0; k < p.size(); ++k) {
      seen[p[k]]++;
      load += costs[p[k]];
      if (k > 0) {
        EXPECT_LT(p[k - 1], p[k]);
      }
    }
    max_load = std::max(max_load, load);
    min_load = std::min(min_load, load);
  }
  for (int s : seen) EXPECT_EQ(s, 1);
  EXPECT_LE(max_load - min_load, 11.0);  // LPT: within the largest item
  EXPECT_EQ(parts, ctm::dist::balanced_partition(costs, 4));
}
