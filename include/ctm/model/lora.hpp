// LoRA adapters in PEFT's format, so PEFT and vLLM load what ctm trains and ctm loads what PEFT trained:
// adapter_config.json + adapter_model.safetensors with keys
// base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight (A [r, in]) / lora_B.weight (B [out, r]).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ctm/io/json.hpp"
#include "ctm/model/transformer.hpp"

namespace ctm::model {

// Adds adapters on cfg.target_modules of every layer (replacing any): A Kaiming-uniform as PEFT
// (uniform(-1/sqrt(in), 1/sqrt(in)), each from its own generator seeded with mix_seed(seed, module, 1)), B
// zero, so the model starts as the base. Adapters are float32 with requires_grad = true, on the model's
// device. Dropout (cfg.dropout) applies in training mode only and draws from torch's global generator.
void add_lora(Transformer& model, const LoraConfig& cfg, uint64_t seed);
void remove_lora(Transformer& model);

// PEFT adapter_config.json for cfg.
ctm::Json peft_config_json(const LoraConfig& cfg, const std::string& base_model_name_or_path);
// LoraConfig from an adapter_config.json (errors name `where` and the field; DoRA, bias training, rank/alpha
// patterns and modules_to_save are rejected as unsupported).
LoraConfig lora_config_from_peft(const ctm::Json& j, const std::string& where);

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (float32), atomically.
void save_peft(const Transformer& model, const std::string& dir, const std::string& base_model_name_or_path);
// Loads a PEFT LoRA folder onto the model (replacing any adapters). Every key must be a LoRA A/B of a known
// projection with matching shapes; errors name the file and the key.
void load_peft(Transformer& model, const std::string& dir);

// The adapters on a model, detached from it, so several can share one base (contrastive estimation switches
// between the positive and the negative model: a 70B base cannot be loaded twice). Holding them costs only
// the adapters' memory.
struct LoraAdapters {
  std::optional<LoraConfig> config;
  std::vector<std::shared_ptr<LoraAdapter>> by_slot;  // layer-major, projection_names() order; null: none
};
// Takes the model's adapters off it (the model is left without any) and returns them.
LoraAdapters detach_lora(Transformer& model);
// Puts adapters taken from a model of the same architecture back on (replacing any).
void attach_lora(Transformer& model, const LoraAdapters& adapters);

// Folds every adapter into its base weight (W += scaling * B A, computed in float32) and removes the
// adapters.
void merge_lora(Transformer& model);

}  // namespace ctm::model
