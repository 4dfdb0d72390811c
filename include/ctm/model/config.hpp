// The hyper-parameters of a Llama / Qwen2 decoder, read from a Hugging Face config.json with Hugging Face's
// defaults where config.json may omit a field, and an error naming the field where it may not.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ctm/io/json.hpp"

namespace ctm::model {

enum class Family { Llama, Qwen2 };

// rope_scaling {"rope_type": "llama3", ...} (Llama 3.1+); the only scaling Llama/Qwen2 checkpoints of this
// project use. Other types are rejected with an error naming them.
struct RopeScaling {
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Family family = Family::Llama;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless config.json gives head_dim
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v (and o for Llama's attention_bias; Qwen2: q/k/v only)
  bool o_proj_bias = false;
  bool mlp_bias = false;
  int64_t max_position_embeddings = 2048;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json may give one id or a list
  std::string torch_dtype = "float32";
  double initializer_range = 0.02;

  static ModelConfig from_json(const ctm::Json& j, const std::string& where);
  static ModelConfig load(const std::string& config_json_path);
  ctm::Json to_json() const;         // a Hugging Face config.json
  std::string architecture() const;  // "LlamaForCausalLM" | "Qwen2ForCausalLM"
  int64_t num_parameters() const;
  int64_t layer_parameters() const;  // one decoder layer: projections, norms, biases
};

}  // namespace ctm::model
