#include "ctm/engine/block_pool.hpp"

#include <cassert>

#include "ctm/core/error.hpp"

namespace ctm::engine {

BlockPool::BlockPool(int64_t num_blocks) {
  grow(num_blocks);
}

bool BlockPool::allocate(int64_t n, BlockList& out) {
  if (n > free_blocks()) return false;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t b = free_.back();
    free_.pop_back();
    assert(refs_[b] == 0);
    refs_[b] = 1;
    out.push_back(b);
  }
  return true;
}

void BlockPool::share(const BlockList& blocks, int64_t count, BlockList& out) {
  CTM_CHECK(count >= 0 && count <= static_cast<int64_t>(blocks.size()), "BlockPool: sharing ", count,
            " blocks of a list of ", blocks.size());
  for (int64_t i = 0; i < count; ++i) {
    const int32_t b = blocks[i];
    CTM_CHECK(refs_.at(b) > 0, "BlockPool: sharing free block ", b);
    ++refs_[b];
    out.push_back(b);
  }
}

void BlockPool::release(BlockList& blocks) {
  for (int32_t b : blocks) {
    CTM_CHECK(refs_.at(b) > 0, "BlockPool: releasing free block ", b);
    if (--refs_[b] == 0) free_.push_back(b);
  }
  blocks.clear();
}

void BlockPool::grow(int64_t n) {
  CTM_CHECK(n < (int64_t{1} << 31), "BlockPool: too many blocks (", n, ")");
  const int64_t old = num_blocks();
  if (n <= old) return;
  refs_.resize(n, 0);
  // Keep the stack order "lowest id on top" for the new ids, below the free old ones.
  std::vector<int32_t> added;
  for (int64_t b = n - 1; b >= old; --b) added.push_back(static_cast<int32_t>(b));
  free_.insert(free_.begin(), added.begin(), added.end());
}

}  // namespace ctm::engine
