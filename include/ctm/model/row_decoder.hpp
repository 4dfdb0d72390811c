// The decoder's forward for a few rows at a time on the CPU in float32 (a decode step, a chunk of a prompt),
// on ctm's own kernels: q/k/v and gate/up as one small-batch product each, norms, RoPE and SwiGLU in plain
// vector loops, no torch operation per layer (at a decode step of the tiny model, torch's dispatch cost more
// than the arithmetic). Each row's result depends only on its token, its position and the keys/values its
// attention reads: not on the other rows, their number or the worker count. The numbers agree with
// Transformer::forward to float rounding, not bit for bit (its own sums and exponentials).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ctm/model/attention.hpp"
#include "ctm/model/packed_linear.hpp"
#include "ctm/model/transformer.hpp"

namespace ctm::model {

class RowDecoder {
 public:
  // CPU, float32, no active LoRA adapter, no block runner (a sharded model's weights are not in place), an
  // AVX2+FMA CPU.
  static bool applies(const Transformer& model);
  // The model must outlive it. With `pack` (and weights of at most kPackLimitBytes) it keeps a copy of the
  // projection and head weights in column panels (PackedLinear, about 1.6x faster at d = 256); otherwise it
  // reads the model's weights through the small-batch kernel. The two round differently.
  explicit RowDecoder(Transformer& model, bool pack = true);
  static constexpr int64_t kPackLimitBytes = int64_t{1} << 30;
  bool packed() const { return !packed_.empty(); }

  // Final hidden states [R, D] (after the final norm) of tokens ids[r] at positions[r]. The backend's
  // attend() sees each row as a sequence of its own of one token: q [R, H, 1, head_dim], k and v [R, K, 1,
  // head_dim].
  torch::Tensor forward_hidden(const std::vector<int64_t>& ids, const std::vector<int64_t>& positions,
                               AttentionBackend& attn);
  // float32 logits [R, V] of hidden rows [R, D].
  torch::Tensor logits(const torch::Tensor& hidden_RD) const;

 private:
  void layer(int64_t i, int64_t R, const float* cos, const float* sin, AttentionBackend& attn);
  void pack_weights();

  Transformer& model_;
  // Per layer: q/k/v stacked, o, gate/up stacked, down; then the LM head (empty when not packed).
  std::vector<PackedLinear> packed_;
  // Activations, reused across calls: x [R, D], h [R, D], qkv [R, (H + 2K) head_dim], tmp [R, D],
  // gu [R, 2F], act [R, F].
  std::vector<float> x_, h_, qkv_, tmp_, gu_, act_;
};

}  // namespace ctm::model
