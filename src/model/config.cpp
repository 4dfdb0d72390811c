#include "ctm/model/config.hpp"

#include <cmath>

#include "ctm/core/error.hpp"

namespace ctm::model {

namespace {

int64_t int_field(const Json& j, const char* key, const std::string& where,
                  std::optional<int64_t> fallback = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    throw Error(ctm::str(where, ": missing field \"", key, "\""));
  }
  if (!it->is_number_integer())
    throw Error(ctm::str(where, ": field \"", key, "\" must be an integer, got ", it->dump()));
  return it->get<int64_t>();
}

int64_t positive_int_field(const Json& j, const char* key, const std::string& where,
                           std::optional<int64_t> fallback = {}) {
  const int64_t v = int_field(j, key, where, fallback);
  if (v <= 0) throw Error(ctm::str(where, ": field \"", key, "\" must be positive, got ", v));
  return v;
}

double number_field(const Json& j, const char* key, const std::string& where,
                    std::optional<double> fallback = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    throw Error(ctm::str(where, ": missing field \"", key, "\""));
  }
  if (!it->is_number())
    throw Error(ctm::str(where, ": field \"", key, "\" must be a number, got ", it->dump()));
  return it->get<double>();
}

bool bool_field(const Json& j, const char* key, const std::string& where, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    throw Error(ctm::str(where, ": field \"", key, "\" must be true or false, got ", it->dump()));
  return it->get<bool>();
}

// Values no real model has are errors here, not NaN log-probabilities or a failed allocation of terabytes
// later. The bounds are far above today's largest models (Llama-3-405B: hidden 16384, vocab 128256).
void check_sane(const ModelConfig& c, const std::string& where) {
  auto bound = [&](const char* key, int64_t v, int64_t max) {
    if (v > max)
      throw Error(ctm::str(where, ": field \"", key, "\" is ", v, ", more than any model has (", max, ")"));
  };
  bound("hidden_size", c.hidden_size, int64_t{1} << 17);
  bound("intermediate_size", c.intermediate_size, int64_t{1} << 20);
  bound("num_hidden_layers", c.num_layers, 1024);
  bound("num_attention_heads", c.num_heads, 1024);
  bound("head_dim", c.head_dim, 1024);
  bound("vocab_size", c.vocab_size, int64_t{1} << 24);
  bound("max_position_embeddings", c.max_position_embeddings, int64_t{1} << 24);
  if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1))
    throw Error(ctm::str(where, ": field \"rms_norm_eps\" must be in (0, 1), got ", c.rms_norm_eps));
  if (!(c.rope_theta > 0 && std::isfinite(c.rope_theta)))
    throw Error(ctm::str(where, ": field \"rope_theta\" must be a positive number, got ", c.rope_theta));
  if (!(c.initializer_range >= 0 && std::isfinite(c.initializer_range)))
    throw Error(ctm::str(where, ": field \"initializer_range\" must be >= 0, got ", c.initializer_range));
  if (c.rope_scaling &&
      !(std::isfinite(c.rope_scaling->factor) && std::isfinite(c.rope_scaling->high_freq_factor)))
    throw Error(ctm::str(where, ": rope_scaling factors must be finite"));
}

}  // namespace

ModelConfig ModelConfig::from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) throw Error(ctm::str(where, ": config must be a JSON object"));
  ModelConfig c;
  // The architecture: "architectures"[0] when present, else model_type.
  std::string arch;
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || !(*it)[0].is_string())
      throw Error(ctm::str(where, ": \"architectures\" must be a non-empty list of names"));
    arch = (*it)[0].get<std::string>();
  }
  std::string model_type;
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) model_type = it->get<std::string>();
  if (arch == "LlamaForCausalLM" || (arch.empty() && model_type == "llama")) {
    c.family = Family::Llama;
  } else if (arch == "Qwen2ForCausalLM" || (arch.empty() && model_type == "qwen2")) {
    c.family = Family::Qwen2;
  } else if (arch.empty() && model_type.empty()) {
    throw Error(ctm::str(where, ": missing field \"architectures\" (or \"model_type\")"));
  } else {
    throw Error(ctm::str(where, ": unsupported architecture \"", arch.empty() ? model_type : arch,
                         "\" (supported: LlamaForCausalLM, Qwen2ForCausalLM)"));
  }

  c.hidden_size = positive_int_field(j, "hidden_size", where);
  c.num_layers = positive_int_field(j, "num_hidden_layers", where);
  c.num_heads = positive_int_field(j, "num_attention_heads", where);
  c.num_kv_heads = positive_int_field(j, "num_key_value_heads", where, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(ctm::str(where, ": num_attention_heads ", c.num_heads,
                         " is not a multiple of num_key_value_heads ", c.num_kv_heads));
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = positive_int_field(j, "head_dim", where);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      throw Error(ctm::str(where, ": hidden_size ", c.hidden_size,
                           " is not a multiple of num_attention_heads ", c.num_heads,
                           " and no head_dim is given"));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0)
    throw Error(ctm::str(where, ": head_dim ", c.head_dim, " must be even (rotary embedding)"));
  c.intermediate_size = positive_int_field(j, "intermediate_size", where);
  c.vocab_size = positive_int_field(j, "vocab_size", where);
  c.rms_norm_eps = number_field(j, "rms_norm_eps", where, 1e-6);
  c.rope_theta = number_field(j, "rope_theta", where, 10000.0);
  c.max_position_embeddings = positive_int_field(j, "max_position_embeddings", where, 2048);
  c.tie_word_embeddings = bool_field(j, "tie_word_embeddings", where, false);
  if (c.family == Family::Qwen2) {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases and never an o_proj bias
    c.o_proj_bias = false;
    if (bool_field(j, "use_sliding_window", where, false))
      throw Error(ctm::str(where, ": use_sliding_window = true is not supported"));
  } else {
    c.attention_bias = bool_field(j, "attention_bias", where, false);
    c.o_proj_bias = c.attention_bias;
    c.mlp_bias = bool_field(j, "mlp_bias", where, false);
  }
  if (auto it = j.find("hidden_act"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "silu")
      throw Error(ctm::str(where, ": unsupported hidden_act ", it->dump(), " (only silu)"));
  }
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    const std::string rw = where + ": rope_scaling";
    if (!it->is_object()) throw Error(ctm::str(rw, " must be an object or null"));
    std::string type;
    if (it->contains("rope_type") && (*it)["rope_type"].is_string())
      type = (*it)["rope_type"].get<std::string>();
    else if (it->contains("type") && (*it)["type"].is_string())
      type = (*it)["type"].get<std::string>();
    if (type == "llama3") {
      RopeScaling s;
      s.factor = number_field(*it, "factor", rw);
      s.low_freq_factor = number_field(*it, "low_freq_factor", rw);
      s.high_freq_factor = number_field(*it, "high_freq_factor", rw);
      s.original_max_position_embeddings = positive_int_field(*it, "original_max_position_embeddings", rw);
      if (s.high_freq_factor <= s.low_freq_factor || s.factor <= 0 || s.low_freq_factor <= 0)
        throw Error(ctm::str(rw, ": need factor > 0 and high_freq_factor > low_freq_factor > 0"));
      c.rope_scaling = s;
    } else if (type != "default") {
      throw Error(ctm::str(rw, ": unsupported type \"", type, "\" (supported: llama3)"));
    }
  }
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer())
    c.bos_token_id = it->get<int64_t>();
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      c.eos_token_ids.push_back(it->get<int64_t>());
    } else if (it->is_array()) {
      for (const auto& e : *it) {
        if (!e.is_number_integer()) throw Error(ctm::str(where, ": eos_token_id entries must be integers"));
        c.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      throw Error(ctm::str(where, ": eos_token_id must be an integer or a list of integers"));
    }
  }
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string())
    c.torch_dtype = it->get<std::string>();
  c.initializer_range = number_field(j, "initializer_range", where, 0.02);
  check_sane(c, where);
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  return from_json(read_json_file(path), path);
}

std::string ModelConfig::architecture() const {
  return family == Family::Qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
}

Json ModelConfig::to_json() const {
  Json j = Json::object();
  j["architectures"] = Json::array({architecture()});
  j["model_type"] = family == Family::Qwen2 ? "qwen2" : "llama";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling) {
    j["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", rope_scaling->factor},
        {"low_freq_factor", rope_scaling->low_freq_factor},
        {"high_freq_factor", rope_scaling->high_freq_factor},
        {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["max_position_embeddings"] = max_position_embeddings;
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1)
    j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty())
    j["eos_token_id"] = eos_token_ids;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["torch_dtype"] = torch_dtype;
  if (family == Family::Llama) {
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = mlp_bias;
  } else {
    j["use_sliding_window"] = false;
  }
  j["initializer_range"] = initializer_range;
  return j;
}

int64_t ModelConfig::layer_parameters() const {
  const int64_t D = hidden_size, Hd = head_dim, q = num_heads * Hd, kv = num_kv_heads * Hd,
                F = intermediate_size;
  int64_t n = 2 * D + D * q + 2 * D * kv + q * D + 3 * D * F;
  if (attention_bias) n += q + 2 * kv;
  if (o_proj_bias) n += D;
  if (mlp_bias) n += 2 * F + D;
  return n;
}

int64_t ModelConfig::num_parameters() const {
  return vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2) + hidden_size +
         num_layers * layer_parameters();
}

}  // namespace ctm::model
