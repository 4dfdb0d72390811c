#include "ctm/model/footprint.hpp"

#include <algorithm>
#include <cstdio>

#include "ctm/core/error.hpp"

namespace ctm::model {

int64_t embedding_parameters(const ModelConfig& c) {
  return c.vocab_size * c.hidden_size;
}

int64_t lora_parameters(const ModelConfig& c, int64_t r, const std::vector<std::string>& targets) {
  const int64_t D = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim,
                F = c.intermediate_size;
  int64_t per_layer = 0;
  for (const std::string& t : targets) {
    if (t == "q_proj")
      per_layer += D + q;
    else if (t == "k_proj" || t == "v_proj")
      per_layer += D + kv;
    else if (t == "o_proj")
      per_layer += q + D;
    else if (t == "gate_proj" || t == "up_proj" || t == "down_proj")
      per_layer += D + F;
    else
      throw Error(str("LoRA target '", t, "' is not a projection of the model"));
  }
  return c.num_layers * r * per_layer;
}

int64_t kv_bytes_per_token(const ModelConfig& c, int64_t dtype_bytes) {
  return 2 * c.num_layers * c.num_kv_heads * c.head_dim * dtype_bytes;
}

Footprint estimate_footprint(const ModelConfig& c, const FootprintQuery& q) {
  const int64_t b = q.dtype_bytes, D = c.hidden_size, kv = c.num_kv_heads * c.head_dim,
                F = c.intermediate_size, N = q.tokens_per_micro_batch;
  Footprint f;
  f.model_bytes = c.num_parameters() * b;
  const int64_t head = c.tie_word_embeddings ? 0 : embedding_parameters(c) * b;
  const int64_t ranks = std::max<int64_t>(1, q.ranks);
  if (q.sharded && ranks > 1) {
    f.resident_bytes = (f.model_bytes - head + ranks - 1) / ranks + head;
    f.gathered_bytes = std::max(embedding_parameters(c), c.layer_parameters()) * b;
  } else {
    f.resident_bytes = f.model_bytes;
  }
  if (q.lora_r > 0) f.lora_bytes = lora_parameters(c, q.lora_r, q.lora_targets) * 24;
  if (N > 0) {
    // Inputs of the projections and norms in the model's dtype, float32 norm temporaries.
    const int64_t layer = N * ((7 * D + 2 * kv + 4 * F) * b + 3 * D * 4);
    const int64_t logits = N * c.vocab_size * 4 * 3;
    if (q.forward_only)
      f.activation_bytes = layer + logits;
    else if (q.sharded && ranks > 1)
      f.activation_bytes = c.num_layers * N * D * b + layer + logits;
    else
      f.activation_bytes = c.num_layers * layer + logits;
  }
  f.kv_cache_bytes = q.kv_cache_bytes;
  return f;
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace ctm::model
