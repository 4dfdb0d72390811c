// The memory model against the numbers of docs/distributed.md's tables, which were worked out by hand from
// the Hugging Face configs (Llama-3-8B and Llama-3-70B), and against the measured shard sizes of tiny.
#include <gtest/gtest.h>

#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"
#include "ctm/model/footprint.hpp"

namespace ctm::model {
namespace {

ModelConfig llama3(int64_t D, int64_t layers, int64_t F, int64_t heads) {
  const Json j = {{"architectures", {"LlamaForCausalLM"}},
                  {"model_type", "llama"},
                  {"hidden_size", D},
                  {"intermediate_size", F},
                  {"num_hidden_layers", layers},
                  {"num_attention_heads", heads},
                  {"num_key_value_heads", 8},
                  {"vocab_size", 128256},
                  {"tie_word_embeddings", false}};
  return ModelConfig::from_json(j, "test");
}
const std::vector<std::string> kAll = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                       "gate_proj", "up_proj", "down_proj"};

TEST(Footprint, WeightsAndShardsOfLlama3) {
  const ModelConfig c8 = llama3(4096, 32, 14336, 32), c70 = llama3(8192, 80, 28672, 64);
  FootprintQuery q;
  q.dtype_bytes = 2;
  EXPECT_NEAR(estimate_footprint(c8, q).model_bytes / 1e9, 16.06, 0.005);
  EXPECT_NEAR(estimate_footprint(c70, q).model_bytes / 1e9, 141.11, 0.005);
  EXPECT_NEAR(c70.layer_parameters() / 1e6, 855.7, 0.05);
  q.sharded = true;
  q.ranks = 8;
  const Footprint f8 = estimate_footprint(c8, q), f70 = estimate_footprint(c70, q);
  EXPECT_NEAR(f8.resident_bytes / 1e9, 2.93, 0.005);
  EXPECT_NEAR(f70.resident_bytes / 1e9, 19.48, 0.005);
  EXPECT_NEAR(f70.gathered_bytes / 1e9, 2.10, 0.005);  // the embedding, larger than a layer
  q.ranks = 1;                                         // one rank: nothing to shard
  EXPECT_EQ(estimate_footprint(c8, q).resident_bytes, estimate_footprint(c8, q).model_bytes);
  EXPECT_EQ(estimate_footprint(c8, q).gathered_bytes, 0);
}

TEST(Footprint, LoraKvAndActivations) {
  const ModelConfig c8 = llama3(4096, 32, 14336, 32), c70 = llama3(8192, 80, 28672, 64);
  EXPECT_NEAR(lora_parameters(c8, 16, kAll) / 1e6, 41.9, 0.05);
  EXPECT_NEAR(lora_parameters(c70, 8, {"gate_proj", "up_proj", "down_proj"}) / 1e6, 70.8, 0.05);
  EXPECT_EQ(kv_bytes_per_token(c8, 2), 131072);
  EXPECT_EQ(kv_bytes_per_token(c70, 2), 327680);
  FootprintQuery q;
  q.dtype_bytes = 2;
  q.ranks = 8;
  q.sharded = true;
  q.lora_r = 16;
  q.lora_targets = kAll;
  q.tokens_per_micro_batch = 4096;  // cDPO: 2 pairs of 1024-token sequences
  const Footprint f = estimate_footprint(c70, q);
  EXPECT_NEAR(f.lora_bytes / 1e9, 4.97, 0.005);        // 24 B a parameter
  EXPECT_NEAR(f.activation_bytes / 1e9, 13.50, 0.01);  // 5.37 checkpoints + 1.83 layer + 6.30 head
  EXPECT_NEAR(f.total() / 1e9, 40.05, 0.01);
  EXPECT_THROW(lora_parameters(c8, 8, {"lm_head"}), Error);
}

TEST(Footprint, FormatsBytes) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(7480000), "7.48 MB");
  EXPECT_EQ(format_bytes(16060000000), "16.06 GB");
}

}  // namespace
}  // namespace ctm::model
