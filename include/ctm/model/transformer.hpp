// The Llama / Qwen2 decoder with Hugging Face semantics: RMSNorm in float32, rotate-half RoPE (with llama3
// scaling), grouped-query attention, SwiGLU MLP, optional q/k/v(/o) biases, optional tied LM head, optional
// LoRA adapters on any projection. Weights and hyper-parameters only: the attention backend holds runtime
// state, the loader (loader.hpp) holds the Hugging Face file layout. Single device, no MPI.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctm/model/attention.hpp"
#include "ctm/model/config.hpp"

namespace ctm::model {

// LoRA hyper-parameters (PEFT's LoraConfig subset ctm uses): scaling = alpha / r (alpha / sqrt(r) with
// rsLoRA).
struct LoraConfig {
  int64_t r = 8;
  double alpha = 16;
  double dropout = 0.0;
  std::vector<std::string> target_modules;  // any of q_proj k_proj v_proj o_proj gate_proj up_proj down_proj
  bool use_rslora = false;
  double scaling() const;
};

// A LoRA adapter on one projection: y += scaling * B(A(dropout(x))). Kept in float32 whatever the base dtype.
struct LoraAdapter {
  torch::Tensor A_rI;  // [r, in]
  torch::Tensor B_Or;  // [out, r]
  double scaling = 1.0;
  double dropout = 0.0;
};

struct Linear {
  torch::Tensor weight;               // [out, in]
  torch::Tensor bias;                 // [out] or undefined
  std::shared_ptr<LoraAdapter> lora;  // null: no adapter
  torch::Tensor forward(const torch::Tensor& x, bool lora_enabled, bool training) const;
  torch::Tensor lora_term(const torch::Tensor& x,
                          bool training) const;  // scaling * B(A(dropout(x))); needs lora
};

struct DecoderLayer {
  torch::Tensor input_layernorm, post_attention_layernorm;  // [D]
  Linear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  // The storage q/k/v and gate/up are views of (rows stacked; biases likewise when present), so that one
  // product serves each group. Undefined for placeholder weights; ignored once a projection's weight is
  // replaced rather than written in place (then the views no longer tile it).
  torch::Tensor qkv_weight, qkv_bias, gate_up_weight, gate_up_bias;
  const Linear* projection(const std::string& name) const;  // "q_proj" ... "down_proj"; nullptr if unknown
  Linear* projection(const std::string& name) {
    return const_cast<Linear*>(static_cast<const DecoderLayer*>(this)->projection(name));
  }
};

// The projection names LoRA may target, in Hugging Face order.
const std::vector<std::string>& projection_names();

// A piece of the forward as a block runner sees it (Transformer::set_block_runner).
enum class Block { kEmbedding, kLayer, kHead };
struct BlockCall {
  Block block = Block::kLayer;
  int64_t layer = -1;  // kLayer: its index
  // Compute the block from its input with the weights the model holds at the time of the call. `run` is
  // valid during the runner's call only; `rerun` may be kept and called later, after the forward returned (it
  // holds the rotary tables, a copy of the attention backend and the training switches); it is empty when the
  // attention backend cannot attend twice (KV caches).
  std::function<torch::Tensor(const torch::Tensor&)> run, rerun;
};
// Runs a block: returns call.run(input) or its equivalent. A wrapper may put weights in place before and
// take them away after (sharded weights gathered for the block) or change what autograd records (recompute
// in the backward pass).
using BlockRunner = std::function<torch::Tensor(const BlockCall& call, const torch::Tensor& input)>;

class Transformer {
 public:
  // kAllocate: every weight allocated (uninitialised) on device in dtype; use load_model / init_model to fill
  // them. kPlaceholders: the base weights are "meta" tensors of the right shapes that hold no memory, for a
  // wrapper that supplies them per block (a sharded model); LoRA adapters are real either way.
  enum class Weights { kAllocate, kPlaceholders };
  Transformer(ModelConfig config, torch::Device device, torch::Dtype dtype,
              Weights weights = Weights::kAllocate);

  const ModelConfig& config() const { return config_; }
  torch::Device device() const { return device_; }
  torch::Dtype dtype() const { return dtype_; }

  // ids_BT, positions_BT: int64 [B, T] on the model's device. Returns the final hidden states [B, T, D]
  // (after the final norm), in the model's dtype.
  torch::Tensor forward_hidden(const torch::Tensor& ids_BT, const torch::Tensor& positions_BT,
                               AttentionBackend& attn);
  torch::Tensor logits(
      const torch::Tensor& hidden_xD);  // LM head, float32 logits [..., V] (float64 model: float64)
  torch::Tensor forward(const torch::Tensor& ids_BT, const torch::Tensor& positions_BT,
                        AttentionBackend& attn);

  // Base weights with Hugging Face names ("model.layers.0.self_attn.q_proj.weight", ...), in file order. A
  // tied head is listed once (as model.embed_tokens.weight).
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;
  // The same, as the places that hold them (for wrappers that swap weights in and out).
  std::vector<std::pair<std::string, torch::Tensor*>> named_parameter_slots();
  std::vector<torch::Tensor> parameters() const;
  void set_requires_grad(bool trainable);  // base weights (full-parameter training); false after loading

  // q/k/v and gate/up as one product each (a LoRA adapter's term added to its slice): fewer kernel launches
  // per layer, the same numbers up to the product's rounding. On by default on GPUs, where a decode step is
  // bound by launches; off on the CPU, where float32 results stay the same bits as the sharded model's
  // (which has no fused storage).
  void set_fused_projections(bool on) { fused_projections_ = on; }
  bool fused_projections() const { return fused_projections_; }
  // Whether layer i's q/k/v and gate/up weights still tile their stacked storage (fusion possible).
  bool projections_stacked(int64_t i) const;

  // Dropout (LoRA) is active only in training mode.
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

  // LoRA (see lora.hpp to add, save, load and merge adapters).
  bool has_lora() const;
  const std::optional<LoraConfig>& lora_config() const { return lora_config_; }
  void set_lora_config(std::optional<LoraConfig> c) { lora_config_ = std::move(c); }  // add_lora / load_peft
  void set_lora_enabled(bool enabled) { lora_enabled_ = enabled; }
  bool lora_enabled() const { return lora_enabled_; }
  std::vector<torch::Tensor> lora_parameters() const;
  // PEFT names without the "base_model.model." prefix: "model.layers.0.self_attn.q_proj.lora_A.weight", ...
  std::vector<std::pair<std::string, torch::Tensor>> named_lora_parameters() const;

  // Called with the layer index before each decoder layer runs (e.g. to gather sharded weights); may be
  // empty.
  void set_before_layer(std::function<void(int64_t)> hook) { before_layer_ = std::move(hook); }
  const std::function<void(int64_t)>& before_layer() const { return before_layer_; }
  // How the embedding, each decoder layer and the LM head run (empty: directly).
  void set_block_runner(BlockRunner runner) { block_runner_ = std::move(runner); }
  bool has_block_runner() const { return static_cast<bool>(block_runner_); }

  // Direct access for the loader, LoRA and parallel wrappers.
  torch::Tensor& embed_tokens() { return embed_tokens_; }
  torch::Tensor& final_norm() { return norm_; }
  torch::Tensor& lm_head() { return tie() ? embed_tokens_ : lm_head_; }
  std::vector<DecoderLayer>& layers() { return layers_; }
  const std::vector<DecoderLayer>& layers() const { return layers_; }

  // Rotary cos/sin for positions_BT: each [B, 1, T, head_dim] in the model's dtype (computed in float32).
  std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& positions_BT) const;

 private:
  bool tie() const { return config_.tie_word_embeddings; }
  torch::Tensor decoder_layer(int64_t i, const torch::Tensor& x_BTD, const torch::Tensor& cos,
                              const torch::Tensor& sin, AttentionBackend& attn, bool lora, bool train) const;
  torch::Tensor run_block(BlockCall call, const torch::Tensor& input) const;

  ModelConfig config_;
  torch::Device device_;
  torch::Dtype dtype_;
  torch::Tensor embed_tokens_;  // [V, D]
  std::vector<DecoderLayer> layers_;
  torch::Tensor norm_;      // [D]
  torch::Tensor lm_head_;   // [V, D]; undefined when tied
  torch::Tensor inv_freq_;  // [head_dim / 2] float32, llama3 scaling applied
  bool training_ = false;
  bool fused_projections_ = false;
  bool lora_enabled_ = true;
  std::optional<LoraConfig> lora_config_;
  std::function<void(int64_t)> before_layer_;
  BlockRunner block_runner_;
};

// RMSNorm as Hugging Face: normalise in float32, cast back to the input dtype, then scale by the weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// Rotate-half RoPE: x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1).
torch::Tensor apply_rope(const torch::Tensor& x_BHTD, const torch::Tensor& cos, const torch::Tensor& sin);
// The inverse frequencies [head_dim / 2] (float32), with llama3 scaling when configured.
torch::Tensor rope_inv_freq(const ModelConfig& config);

}  // namespace ctm::model
