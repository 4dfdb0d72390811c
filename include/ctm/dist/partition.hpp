// Static partitions of items over ranks. Items keep their ids, so a rank's results can be put back in item
// order.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace ctm::dist {

// Contiguous block [begin, end) of n items for rank r of size ranks (sizes differ by at most one).
std::pair<int64_t, int64_t> block_range(int64_t n, int rank, int size);

// Cost-balanced static partition: item ids per rank, each list in increasing id order. Greedy
// longest-processing-time first, ties broken by item id, so the partition is deterministic.
std::vector<std::vector<int64_t>> balanced_partition(const std::vector<double>& costs, int size);

}  // namespace ctm::dist
