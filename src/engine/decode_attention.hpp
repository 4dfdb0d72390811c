// The CPU kernel of the engine's attention over the block pool (float32), private to the engine. Keys are
// stored transposed within a block ([num_blocks, kv_heads, head_dim, block_size]) and values row by row
// ([num_blocks, kv_heads, block_size, head_dim]), so both products run with whole vectors along the keys
// (scores) or along head_dim (outputs) and a query is only ever broadcast: the kernel serves one query or a
// group of them with the same operations. Queries that share a prefix form a group: each prefix key is loaded
// once for up to a tile of queries, which is what makes 64 samples of one prompt (and 64 rollouts of one cut)
// cheap.
//
// Every output depends only on its query and the keys/values it reads, in order: a score is the FMA chain
// over head_dim, the softmax is over the row of scores [prefix keys, own keys], and the output is the FMA
// chain over the keys in order. So the result is the same bits whatever the group, the tile, the thread or
// the block boundaries (a prompt prefilled in chunks, a cached prefix's cut, a decode step all agree).
#pragma once

#include <cstdint>

namespace ctm::engine::detail {

struct AttentionSlot {
  const float* q;  // [num_heads, head_dim]
  float* out;      // [num_heads, head_dim]
  const int32_t* prefix_blocks;
  int64_t prefix_len;  // keys read from the (shared) prefix blocks
  const int32_t* suffix_blocks;
  int64_t suffix_len;  // keys of the slot's own blocks, read after the prefix ones (0: none)
};

struct AttentionPool {
  const float* k_pool;  // [NB, K, D, BS]
  const float* v_pool;  // [NB, K, BS, D]
  int64_t num_heads, num_kv_heads, head_dim, block_size;
  float scale;  // 1 / sqrt(head_dim)
};

// Attention of the `count` slots `members` (indices into slots), which share their prefix blocks, for the
// query heads of key/value head kh. Within a group either every slot reads the same prefix length, or no
// slot has own keys (the rows of a prompt, each reading its own prefix length). Uses a per-thread scratch.
void attend_group(const AttentionPool& pool, const AttentionSlot* slots, const int64_t* members,
                  int64_t count, int64_t kh);
// The portable build alone, for tests (attend_group takes the AVX-512 or AVX2 build where the CPU has it).
void attend_group_portable(const AttentionPool& pool, const AttentionSlot* slots, const int64_t* members,
                           int64_t count, int64_t kh);

}  // namespace ctm::engine::detail
