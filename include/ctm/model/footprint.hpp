// The memory a model needs per rank, from its config.json alone (no weight is read): the arithmetic of
// docs/distributed.md "Memory model", so `--dry_run` can say before a job starts whether it fits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/model/config.hpp"

namespace ctm::model {

// Parameter counts of the pieces the memory model needs (ModelConfig::layer_parameters: one layer).
int64_t embedding_parameters(const ModelConfig& c);  // vocab × hidden (also the untied head's size)
// LoRA parameters on every layer: r × (in + out) summed over the targeted projections.
int64_t lora_parameters(const ModelConfig& c, int64_t r, const std::vector<std::string>& targets);
// K and V of one token over every layer.
int64_t kv_bytes_per_token(const ModelConfig& c, int64_t dtype_bytes);

struct FootprintQuery {
  int64_t dtype_bytes = 4;  // of the base weights, activations and KV cache (4 float32, 2 bfloat16)
  int64_t ranks = 1;
  bool sharded =
      false;  // FSDP-style: every weight but the head split over the ranks, a block gathered at a time
  // Training (LoRA + AdamW, float32): adapter rank and targets, and the tokens of one micro-batch.
  int64_t lora_r = 0;
  std::vector<std::string> lora_targets;
  int64_t tokens_per_micro_batch = 0;
  bool forward_only = false;  // no gradient: one layer's activations at a time, and the head's logits
  // Sampling: the KV cache the engine may hold.
  int64_t kv_cache_bytes = 0;
};

// Bytes per rank. Activations are an upper bound: every token of the micro-batch reaching the head (float32
// logits, their log-softmax and gradient); with sharding each block's input is kept and one layer recomputed
// in the backward, without it every layer's activations are kept.
struct Footprint {
  int64_t model_bytes = 0;     // the whole base
  int64_t resident_bytes = 0;  // the base weights this rank keeps
  int64_t gathered_bytes = 0;  // the largest block gathered at once (sharded only)
  int64_t lora_bytes = 0;  // adapters, gradients, the two AdamW moments (float32), the float64 gradient sum
  int64_t activation_bytes = 0;
  int64_t kv_cache_bytes = 0;
  int64_t total() const {
    return resident_bytes + gathered_bytes + lora_bytes + activation_bytes + kv_cache_bytes;
  }
};
Footprint estimate_footprint(const ModelConfig& c, const FootprintQuery& q);

// "512 B", "7.48 MB", "16.06 GB" (powers of 1000, as the docs' tables).
std::string format_bytes(int64_t bytes);

}  // namespace ctm::model
