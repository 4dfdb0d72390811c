#include "ctm/model/attention.hpp"

#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "ctm/core/error.hpp"

namespace ctm::model {

using torch::indexing::Slice;

torch::Tensor grouped_attention(const torch::Tensor& q_BHTD, const torch::Tensor& k_BKSD,
                                const torch::Tensor& v_BKSD, const torch::Tensor& allowed_B1TS, bool causal) {
  const int64_t B = q_BHTD.size(0), H = q_BHTD.size(1), T = q_BHTD.size(2), D = q_BHTD.size(3);
  const int64_t K = k_BKSD.size(1), S = k_BKSD.size(2);
  const int64_t R = H / K;  // query heads per key/value head
#if TORCH_VERSION_MAJOR >= 2
  (void)T;  // only the libtorch 1.x path needs it
  // The fused kernel wants as many key/value heads as query heads.
  torch::Tensor k = k_BKSD, v = v_BKSD;
  if (R > 1) {
    k = k_BKSD.unsqueeze(2).expand({B, K, R, S, D}).reshape({B, H, S, D});
    v = v_BKSD.unsqueeze(2).expand({B, K, R, S, D}).reshape({B, H, S, D});
  }
  if (!allowed_B1TS.defined())
    return at::scaled_dot_product_attention(q_BHTD, k, v, {}, 0.0, /*is_causal=*/causal);
  return at::scaled_dot_product_attention(q_BHTD, k, v, allowed_B1TS, 0.0, false);
#else
  // Heads grouped as [B, K, R, T, D] so each key/value head serves its R query heads without a copy.
  // The scale goes on q ([.., T, D]) rather than on the scores ([.., T, S]), and the mask is filled in place:
  // two fewer passes over the largest tensor, forward and backward.
  const auto q5 = q_BHTD.reshape({B, K, R, T, D}) * (1.0 / std::sqrt(static_cast<double>(D)));
  auto scores = torch::matmul(q5, k_BKSD.unsqueeze(2).transpose(-1, -2));
  torch::Tensor allowed = allowed_B1TS;
  if (!allowed.defined() && causal)
    allowed = torch::ones({T, S}, torch::dtype(torch::kBool).device(q_BHTD.device()))
                  .tril(S - T)
                  .view({1, 1, T, S});
  if (allowed.defined())
    scores.masked_fill_(allowed.logical_not().unsqueeze(1), -std::numeric_limits<float>::infinity());
  const auto probs = torch::softmax(scores, -1, accum_dtype(scores.scalar_type())).to(q_BHTD.scalar_type());
  return torch::matmul(probs, v_BKSD.unsqueeze(2)).reshape({B, H, T, D});
#endif
}

// ---- CausalAttention
// --------------------------------------------------------------------------------------------

CausalAttention::CausalAttention(torch::Tensor key_valid_BT) : key_valid_BT_(std::move(key_valid_BT)) {}

torch::Tensor CausalAttention::attend(int64_t layer, const torch::Tensor& q_BHTD, const torch::Tensor& k_BKTD,
                                      const torch::Tensor& v_BKTD) {
  if (!key_valid_BT_.defined()) return grouped_attention(q_BHTD, k_BKTD, v_BKTD, {}, /*causal=*/true);
  const int64_t B = q_BHTD.size(0), T = q_BHTD.size(2);
  if (layer == 0 || !allowed_B1TT_.defined() || allowed_B1TT_.size(0) != B || allowed_B1TT_.size(2) != T) {
    CTM_CHECK(key_valid_BT_.dim() == 2 && key_valid_BT_.size(0) == B && key_valid_BT_.size(1) == T,
              "CausalAttention: key mask of shape ", key_valid_BT_.sizes(), " for a batch of ", B, " x ", T);
    const auto opts = torch::dtype(torch::kBool).device(q_BHTD.device());
    const auto causal_TT = torch::ones({T, T}, opts).tril();
    const auto self_TT = torch::eye(T, opts);
    const auto valid_B1T = key_valid_BT_.to(q_BHTD.device(), torch::kBool).view({B, 1, T});
    // [B, T, T]: causal and (key valid or the query's own position)
    allowed_B1TT_ =
        causal_TT.unsqueeze(0).logical_and(valid_B1T.logical_or(self_TT.unsqueeze(0))).unsqueeze(1);
  }
  return grouped_attention(q_BHTD, k_BKTD, v_BKTD, allowed_B1TT_, false);
}

// ---- KVCache
// ------------------------------------------------------------------------------------------------------

KVCache::KVCache(const ModelConfig& config, int64_t batch, int64_t max_len, torch::Device device,
                 torch::Dtype dtype)
    : num_layers_(config.num_layers), batch_(batch), max_len_(max_len), device_(device), lengths_(batch, 0) {
  CTM_CHECK(batch > 0 && max_len > 0, "KVCache: batch and max_len must be positive");
  const auto opts = torch::dtype(dtype).device(device);
  for (int64_t l = 0; l < num_layers_; ++l) {
    k_BSKD_.push_back(torch::zeros({batch, max_len, config.num_kv_heads, config.head_dim}, opts));
    v_BSKD_.push_back(torch::zeros({batch, max_len, config.num_kv_heads, config.head_dim}, opts));
  }
}

void KVCache::set_length(int64_t b, int64_t len) {
  CTM_CHECK(b >= 0 && b < batch_ && len >= 0 && len <= max_len_, "KVCache::set_length(", b, ", ", len,
            "): out of range (batch ", batch_, ", max_len ", max_len_, ")");
  lengths_[b] = len;
}

void KVCache::reset() {
  std::fill(lengths_.begin(), lengths_.end(), 0);
}

torch::Tensor KVCache::next_positions(int64_t T) const {
  auto lens = torch::tensor(lengths_, torch::kInt64).to(device_);
  return lens.unsqueeze(1) + torch::arange(T, torch::dtype(torch::kInt64).device(device_)).unsqueeze(0);
}

torch::Tensor KVCache::attend(int64_t layer, const torch::Tensor& q_BHTD, const torch::Tensor& k_BKTD,
                              const torch::Tensor& v_BKTD) {
  const int64_t B = q_BHTD.size(0), T = q_BHTD.size(2);
  CTM_CHECK(B == batch_, "KVCache: batch of ", B, " for a cache of ", batch_, " sequences");
  CTM_CHECK(layer >= 0 && layer < num_layers_, "KVCache: layer ", layer, " out of range");
  if (layer == 0) {
    const int64_t longest = *std::max_element(lengths_.begin(), lengths_.end());
    CTM_CHECK(longest + T <= max_len_, "KVCache: ", longest, " cached + ", T, " new tokens exceed max_len ",
              max_len_);
    span_ = longest + T;
    pos_BT_ = next_positions(T);
    batch_idx_BT_ = torch::arange(B, pos_BT_.options()).unsqueeze(1).expand({B, T});
    const auto key_pos_11S = torch::arange(span_, pos_BT_.options()).view({1, 1, span_});
    allowed_B1TS_ = key_pos_11S.le(pos_BT_.unsqueeze(2)).unsqueeze(1);  // key s <= query position
  }
  // Append: cache[b, len_b + t] = new[b, t]
  k_BSKD_[layer].index_put_({batch_idx_BT_, pos_BT_},
                            k_BKTD.transpose(1, 2).to(k_BSKD_[layer].scalar_type()));
  v_BSKD_[layer].index_put_({batch_idx_BT_, pos_BT_},
                            v_BKTD.transpose(1, 2).to(v_BSKD_[layer].scalar_type()));
  const auto k_BKSD = k_BSKD_[layer].narrow(1, 0, span_).transpose(1, 2);
  const auto v_BKSD = v_BSKD_[layer].narrow(1, 0, span_).transpose(1, 2);
  auto out = grouped_attention(q_BHTD, k_BKSD, v_BKSD, allowed_B1TS_, false);
  if (layer == num_layers_ - 1)
    for (auto& len : lengths_) len += T;
  return out;
}

}  // namespace ctm::model
