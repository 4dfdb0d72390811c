// Reference-counted KV block accounting: a fixed number of blocks, each free or held by one or more users (a
// request's prompt, a sample's own tokens, a cached prefix, requests started from a cut of it). A shared
// block is one block: the pool counts it once, however many users hold it. It returns to the free list when
// its last user releases it. Accounting only: the keys and values live in SharedPrefixCache.
#pragma once

#include <cstdint>
#include <vector>

namespace ctm::engine {

using BlockList = std::vector<int32_t>;

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks = 0);

  int64_t num_blocks() const { return static_cast<int64_t>(refs_.size()); }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_blocks() const { return num_blocks() - free_blocks(); }
  int32_t refcount(int32_t block) const { return refs_.at(block); }

  // Appends n fresh blocks (reference count 1) to out; false, and nothing taken, if fewer are free.
  bool allocate(int64_t n, BlockList& out);
  // Appends blocks[0 .. count) to out, each with one more reference.
  void share(const BlockList& blocks, int64_t count, BlockList& out);
  // Drops one reference to every block of the list (a block whose count reaches 0 is free again); clears it.
  void release(BlockList& blocks);
  // More blocks (new ids num_blocks() .. n - 1, free); existing ids and counts are unchanged.
  void grow(int64_t n);

 private:
  std::vector<int32_t> refs_;  // per block; 0 = free
  std::vector<int32_t> free_;  // a stack: the lowest ids are taken first
};

}  // namespace ctm::engine
