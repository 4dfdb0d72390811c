// The CPU kernel of shared-prefix decode attention (float32), private to the engine. One query token per
// slot; keys and values live in a block pool [num_blocks, kv_heads, block_size, head_dim]. Slots that share a
// prefix form a group: each prefix block is loaded once per group and used for every slot of the group, which
// is what makes n samples of one prompt (and 64 rollouts of one prefix) cheap.
#pragma once

#include <cstdint>

namespace ctm::engine::detail {

struct DecodeSlot {
  const int32_t* prefix_blocks;
  int64_t prefix_len;
  const int32_t* suffix_blocks;
  int64_t suffix_len;  // keys of this slot's own tokens, the current one included (already written)
};

struct DecodeAttentionArgs {
  const float* q;       // [S, H, D]
  float* out;           // [S, H, D]
  const float* k_pool;  // [NB, K, BS, D]
  const float* v_pool;  // [NB, K, BS, D]
  int64_t num_heads, num_kv_heads, head_dim, block_size;
  const DecodeSlot* slots;
  const int64_t* group_slots;    // slot indices, grouped by shared prefix
  const int64_t* group_offsets;  // group g = group_slots[group_offsets[g] .. group_offsets[g + 1])
  int64_t num_groups;
  float scale;     // 1 / sqrt(head_dim)
  float* scratch;  // scores: at least (largest group size) * H * (its longest context) floats
  float* lse;      // optional [S, H]: log-sum-exp of each row's scores (to merge with a separately computed part)
};

// Runs the AVX2+FMA build of the kernel when the CPU has it, the portable one otherwise.
void decode_attention(const DecodeAttentionArgs& args);
void decode_attention_portable(const DecodeAttentionArgs& args);  // for tests: the portable build

}  // namespace ctm::engine::detail
