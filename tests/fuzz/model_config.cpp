// Fuzz target: ModelConfig::from_json on a fuzzed config.json (parsed by ctm::parse_json, as
// ModelConfig::load does). A config that is accepted must describe a buildable model and survive its own
// round trip: to_json() is read back to the same configuration, and num_parameters() is computed without
// overflow (UBSan aborts on signed overflow). Anything other than ctm::Error escaping is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"
#include "ctm/model/config.hpp"
#include "fuzz_util.hpp"

namespace {

using ctm::fuzz::require;
using ctm::model::ModelConfig;

bool same(const ModelConfig& a, const ModelConfig& b) {
  const bool same_scaling =
      a.rope_scaling.has_value() == b.rope_scaling.has_value() &&
      (!a.rope_scaling || (a.rope_scaling->factor == b.rope_scaling->factor &&
                           a.rope_scaling->low_freq_factor == b.rope_scaling->low_freq_factor &&
                           a.rope_scaling->high_freq_factor == b.rope_scaling->high_freq_factor &&
                           a.rope_scaling->original_max_position_embeddings ==
                               b.rope_scaling->original_max_position_embeddings));
  return a.family == b.family && a.hidden_size == b.hidden_size && a.num_layers == b.num_layers &&
         a.num_heads == b.num_heads && a.num_kv_heads == b.num_kv_heads && a.head_dim == b.head_dim &&
         a.intermediate_size == b.intermediate_size && a.vocab_size == b.vocab_size &&
         a.rms_norm_eps == b.rms_norm_eps && a.rope_theta == b.rope_theta && same_scaling &&
         a.tie_word_embeddings == b.tie_word_embeddings && a.attention_bias == b.attention_bias &&
         a.o_proj_bias == b.o_proj_bias && a.mlp_bias == b.mlp_bias &&
         a.max_position_embeddings == b.max_position_embeddings && a.bos_token_id == b.bos_token_id &&
         a.eos_token_ids == b.eos_token_ids && a.torch_dtype == b.torch_dtype &&
         a.initializer_range == b.initializer_range;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ModelConfig config;
  try {
    const ctm::Json j = ctm::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    config = ModelConfig::from_json(j, "config.json");
  } catch (const ctm::Error&) {
    return 0;
  }
  require(config.num_heads % config.num_kv_heads == 0, "num_heads is not a multiple of num_kv_heads");
  require(config.head_dim > 0 && config.head_dim % 2 == 0, "head_dim is not positive and even");
  require(config.num_parameters() > 0, "num_parameters() is not positive");
  require(!config.architecture().empty(), "no architecture name");
  const ctm::Json again = config.to_json();
  ModelConfig round_trip;
  try {
    round_trip = ModelConfig::from_json(ctm::parse_json(again.dump(), "to_json()"), "to_json()");
  } catch (const ctm::Error& e) {
    std::fprintf(stderr, "fuzz: to_json() is rejected: %s\n", e.what());
    std::abort();
  }
  require(same(config, round_trip), "to_json() reads back to a different configuration");
  return 0;
}
