// Attention backends: the transformer projects q/k/v, applies RoPE and hands them to a backend, which keeps
// whatever key/value state it needs and returns the attention output. The model holds weights only; a backend
// holds the runtime state (no cache, a dense KV cache, or the engine's shared-prefix cache).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "ctm/model/config.hpp"

namespace ctm::model {

// The precision of norms, softmaxes and logits: float32, or float64 for a float64 model (gradient checks).
inline torch::Dtype accum_dtype(torch::ScalarType dt) {
  return dt == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  // q_BHTD [B, n_heads, T, head_dim]; k_BKTD, v_BKTD [B, n_kv_heads, T, head_dim] for the T new tokens (RoPE
  // applied). Returns [B, n_heads, T, head_dim]. Called once per layer, layers in order 0..L-1.
  virtual torch::Tensor attend(int64_t layer, const torch::Tensor& q_BHTD, const torch::Tensor& k_BKTD,
                               const torch::Tensor& v_BKTD) = 0;
  // A copy that may attend again to layers this backend has seen, after the forward that used it returned
  // (a layer recomputed in the backward pass). nullptr: the backend keeps state a second attend would corrupt
  // (a KV cache).
  virtual std::shared_ptr<AttentionBackend> clone_for_rerun() const { return nullptr; }
};

// Scaled dot-product attention of q over keys k / values v with grouped-query heads (n_heads a multiple of
// n_kv_heads; query head h reads key/value head h / (n_heads / n_kv_heads), as Hugging Face's repeat_kv).
// allowed_B1TS: bool [B, 1, T, S], true where query t may read key s; undefined with causal = true means the
// plain causal mask (T == S). Softmax in float32. Uses torch's fused kernel when libtorch >= 2.
torch::Tensor grouped_attention(const torch::Tensor& q_BHTD, const torch::Tensor& k_BKSD,
                                const torch::Tensor& v_BKSD, const torch::Tensor& allowed_B1TS, bool causal);

// No cache: causal attention over the tokens of this forward, with an optional key padding mask (training,
// scoring). key_valid_BT: bool [B, T], false at padding. A query always reads its own key, so a padding row
// never has an empty softmax (its output is meaningless but finite). The mask is built once, on the first
// layer.
class CausalAttention : public AttentionBackend {
 public:
  CausalAttention() = default;
  explicit CausalAttention(torch::Tensor key_valid_BT);
  torch::Tensor attend(int64_t layer, const torch::Tensor& q_BHTD, const torch::Tensor& k_BKTD,
                       const torch::Tensor& v_BKTD) override;
  std::shared_ptr<AttentionBackend> clone_for_rerun() const override {
    return std::make_shared<CausalAttention>(*this);
  }

 private:
  torch::Tensor key_valid_BT_;
  torch::Tensor allowed_B1TT_;  // built on the first attend of a forward, reused by every layer
};

// A dense KV cache for B sequences, each with its own length. Each forward appends its T new tokens to every
// sequence at that sequence's current length; query t of sequence b reads the cached keys 0 .. len_b + t. The
// lengths advance by T after the last layer. After a right-padded prefill, set_length() drops the padding
// (its cache slots are overwritten by the next tokens). Positions for RoPE are the caller's
// (next_positions()).
class KVCache : public AttentionBackend {
 public:
  KVCache(const ModelConfig& config, int64_t batch, int64_t max_len, torch::Device device,
          torch::Dtype dtype);
  torch::Tensor attend(int64_t layer, const torch::Tensor& q_BHTD, const torch::Tensor& k_BKTD,
                       const torch::Tensor& v_BKTD) override;

  int64_t batch() const { return batch_; }
  int64_t max_len() const { return max_len_; }
  const std::vector<int64_t>& lengths() const { return lengths_; }
  void set_length(int64_t b, int64_t len);
  void reset();  // every length back to 0
  // int64 [B, T] on the cache's device: len_b + t, the positions of the next T tokens.
  torch::Tensor next_positions(int64_t T) const;

 private:
  int64_t num_layers_, batch_, max_len_;
  torch::Device device_;
  std::vector<torch::Tensor> k_BSKD_, v_BSKD_;  // per layer [B, max_len, n_kv_heads, head_dim]
  std::vector<int64_t> lengths_;
  // Per forward (built at layer 0, shared by the other layers).
  torch::Tensor batch_idx_BT_, pos_BT_, allowed_B1TS_;
  int64_t span_ = 0;  // keys read this forward: max(len) + T
};

}  // namespace ctm::model
