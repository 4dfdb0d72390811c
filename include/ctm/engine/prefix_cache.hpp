// The engine's KV cache: a fixed pool of blocks (block_size tokens of every layer's keys and values) from
// which a request's prompt (its prefix, stored once) and each sample's own tokens (its suffix) take blocks. A
// decode step attends, for every slot, over [prefix keys, suffix keys]: the prefix part is computed once per
// group of slots that share a prompt. The pool is allocated once with a fixed number of blocks, so the engine
// can never use more KV memory than that.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ctm/model/attention.hpp"
#include "ctm/model/config.hpp"

namespace ctm::engine {

using BlockList = std::vector<int32_t>;

class SharedPrefixCache : public model::AttentionBackend {
 public:
  SharedPrefixCache(const model::ModelConfig& config, int64_t num_blocks, int64_t block_size,
                    torch::Device device, torch::Dtype dtype);

  // Bytes of one token's keys and values over every layer.
  static int64_t bytes_per_token(const model::ModelConfig& config, torch::Dtype dtype);
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  int64_t pool_bytes() const;  // the whole pool (what the budget bounds)

  // Takes n blocks from the pool (false, and nothing taken, if fewer are free); release gives them back.
  bool allocate(int64_t n, BlockList& out);
  void release(BlockList& blocks);

  // The next forward is one sequence [1, T]: its keys/values become positions 0..T-1 of `prefix` (enough
  // blocks), with causal attention among them.
  void begin_prefill(const BlockList& prefix);

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

  // Use the torch-op path even where the CPU kernel applies (tests compare the two).
  void set_force_reference(bool on) { force_reference_ = on; }
  // CPU kernel: groups of at least this many slots compute their prefix part as matrix products (scores of
  // all the group's queries against the prefix in one GEMM per key/value head), merged with the kernel's
  // suffix part.
  void set_prefix_gemm_min_group(int64_t n) { prefix_gemm_min_group_ = n; }

 private:
  torch::Tensor attend_prefill(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v);
  torch::Tensor attend_decode_cpu(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v);
  torch::Tensor attend_decode_reference(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v);
  void write_token(int64_t layer, int64_t block, int64_t offset, const torch::Tensor& k_KD,
                   const torch::Tensor& v_KD);
  // [K, len, D] keys (or values) of a block list, for the reference path.
  torch::Tensor gather(const torch::Tensor& pool, const BlockList& blocks, int64_t len) const;

  enum class Mode { None, Prefill, Decode };
  int64_t num_layers_, num_kv_heads_, head_dim_, num_blocks_, block_size_;
  torch::Device device_;
  torch::Dtype dtype_;
  std::vector<torch::Tensor> k_pool_, v_pool_;  // per layer [num_blocks, kv_heads, block_size, head_dim]
  std::vector<int32_t> free_;
  Mode mode_ = Mode::None;
  const BlockList* prefill_blocks_ = nullptr;
  std::vector<Slot> slots_;
  std::vector<int64_t> group_slots_, group_offsets_;  // slots grouped by shared prefix
  std::vector<float> scratch_;
  bool force_reference_ = false;
  int64_t prefix_gemm_min_group_ = 8;
};

}  // namespace ctm::engine
