// The engine's KV cache: a pool of blocks (block_size tokens of every layer's keys and values) from which a
// request's prompt (its prefix) and each sample's own tokens (its suffix) take blocks. Blocks are reference
// counted (BlockPool): a cached prefix and the requests started from cuts of it hold the same blocks. A
// decode step attends, for every slot, over [prefix keys, suffix keys]: the prefix part is computed once per
// group of slots that share a prefix. The pool only grows when asked to (reserve), so the engine never uses
// more KV memory than it reserved.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ctm/engine/block_pool.hpp"
#include "ctm/model/attention.hpp"
#include "ctm/model/config.hpp"

namespace ctm::engine {
namespace detail {
struct AttentionSlot;
}

class SharedPrefixCache : public model::AttentionBackend {
 public:
  SharedPrefixCache(const model::ModelConfig& config, int64_t num_blocks, int64_t block_size,
                    torch::Device device, torch::Dtype dtype);

  // Bytes of one token's keys and values over every layer.
  static int64_t bytes_per_token(const model::ModelConfig& config, torch::Dtype dtype);
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return pool_.num_blocks(); }
  int64_t free_blocks() const { return pool_.free_blocks(); }
  int64_t used_blocks() const { return pool_.used_blocks(); }
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  int64_t pool_bytes() const;  // the whole pool (what the budget bounds)
  const BlockPool& pool() const { return pool_; }

  // Grows the pool to at least num_blocks blocks (their contents and ids are kept).
  void reserve(int64_t num_blocks);
  // Takes n fresh blocks (false, and nothing taken, if fewer are free); share adds a reference to the first
  // count blocks of a list; release drops one reference from each block of a list and clears it.
  bool allocate(int64_t n, BlockList& out) { return pool_.allocate(n, out); }
  void share(const BlockList& blocks, int64_t count, BlockList& out) { pool_.share(blocks, count, out); }
  void release(BlockList& blocks) { pool_.release(blocks); }
  // Copies the first `tokens` keys/values of block src into block dst, in every layer (copy-on-write of a
  // partly used shared block).
  void copy_tokens(int32_t src, int32_t dst, int64_t tokens);

  // The next forward adds T tokens after the first `start` of `blocks` (which hold their keys/values already;
  // enough blocks for start + T): their keys/values become positions start .. start+T-1, and token t attends
  // over positions 0 .. start+t. The forward is one sequence [1, T], or T rows [T, 1] at consecutive
  // positions. On the CPU in float32 each row's result depends only on the keys it reads, not on start, T or
  // how the positions are split into blocks (a prompt prefilled in chunks gives the same bits as in one go).
  void begin_extend(const BlockList& blocks, int64_t start);
  void begin_prefill(const BlockList& prefix) { begin_extend(prefix, 0); }

  // The next forward is [S, 1]: slot s attends over its prefix (prefix_len keys) and its suffix (suffix_len
  // keys before this step); its new key/value is written at suffix position suffix_len. Slots with the same
  // prefix BlockList object share the prefix work.
  struct Slot {
    const BlockList* prefix;
    int64_t prefix_len;
    const BlockList* suffix;
    int64_t suffix_len;
  };
  void begin_decode(std::vector<Slot> slots);

  torch::Tensor attend(int64_t layer, const torch::Tensor& q_BHTD, const torch::Tensor& k_BKTD,
                       const torch::Tensor& v_BKTD) override;

  // Use the torch-op path (the one CUDA and non-float32 pools take) even where the CPU kernel applies (tests
  // compare the two).
  void set_force_reference(bool on);

 private:
  torch::Tensor attend_extend(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v);
  // The torch-op decode: a few batched operations per layer whatever the slot count (no per-slot launch on a
  // GPU). Each group's prefix is gathered once and attended by all its slots' queries; each slot's suffix is
  // gathered by its block table; the two partial softmaxes are merged by their log-sum-exps. When every group
  // has one slot (distinct prompts) each slot reads its prefix and suffix through one table in one pass.
  torch::Tensor attend_decode_batched(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v);
  // The index tensors of the batched decode, built once per step (begin_decode) on the pool's device.
  void build_batched_decode();
  // New keys/values: rows of [K, D] (k + r * k_stride, v + r * v_stride); row r goes to position
  // positions[r] of block list blocks[r], in the pools of one layer.
  struct NewRows {
    const float* k;
    int64_t k_stride;
    const float* v;
    int64_t v_stride;
    const int32_t* const* blocks;
    const int64_t* positions;
    float* k_pool;
    float* v_pool;
  };
  NewRows new_rows(int64_t layer, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                   const int32_t* const* blocks, const int64_t* positions);
  void write_row_cpu(const NewRows& rows, int64_t r, int64_t kv_head) const;
  // The CPU kernel for groups of slots, split across the workers; with own_rows, slot s's new key/value (row
  // s) is written first, by the task that reads it.
  void attend_cpu(int64_t layer, int64_t H, const std::vector<detail::AttentionSlot>& slots,
                  const int64_t* group_slots, const int64_t* group_offsets, int64_t num_groups,
                  const NewRows* own_rows = nullptr);
  torch::Tensor attend_decode_cpu(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v);
  bool use_kernel() const { return !force_reference_ && device_.is_cpu() && dtype_ == torch::kFloat32; }
  // Writes rows [N, K, D] of new keys/values at (block[n], offset[n]) of one layer's pools (int64 indices on
  // the pool's device).
  void write_rows(int64_t layer, const torch::Tensor& block_N, const torch::Tensor& offset_N,
                  const torch::Tensor& k_NKD, const torch::Tensor& v_NKD);
  // The blocks of tables [N, nb]: keys as [N, K, D, nb * block_size], values as [N, K, nb * block_size, D].
  torch::Tensor gather(int64_t layer, bool keys, const torch::Tensor& blocks_NB) const;

  enum class Mode { None, Extend, Decode };
  int64_t num_layers_, num_kv_heads_, head_dim_, block_size_;
  torch::Device device_;
  torch::Dtype dtype_;
  // Per layer: keys [num_blocks, kv_heads, head_dim, block_size] (transposed within a block, for the kernel's
  // vectors along the keys), values [num_blocks, kv_heads, block_size, head_dim].
  std::vector<torch::Tensor> k_pool_, v_pool_;
  BlockPool pool_;
  Mode mode_ = Mode::None;
  const BlockList* extend_blocks_ = nullptr;
  int64_t extend_start_ = 0;
  std::vector<Slot> slots_;
  std::vector<int64_t> group_slots_, group_offsets_;  // slots grouped by shared prefix
  // The batched decode's tables (torch path): where each slot writes; each slot's own blocks and valid
  // positions (its suffix; its prefix in front when every group has one slot, M = 1); with M > 1 each group's
  // prefix blocks and valid positions, the query rows of the groups' [G, M] grid (index S: a zero row) and
  // each slot's place in it.
  struct BatchedDecode {
    torch::Tensor write_block, write_offset;    // [S]
    torch::Tensor slot_blocks, slot_valid;      // [S, nbs], [S, nbs * block_size]
    torch::Tensor prefix_blocks, prefix_valid;  // [G, nbp], [G, nbp * block_size]
    torch::Tensor grid_rows, slot_cells;        // [G * M], [S]
    int64_t groups = 0, group_size = 0;         // G, M
  } batched_;
  bool force_reference_ = false;
};

}  // namespace ctm::engine
