// config.json parsing (Llama, Qwen2, llama3 rope scaling, errors naming the field), and the batched
// transformer against an independent token-by-token, head-by-head reference written from the Hugging Face
// definitions in float64: covers what the Llama fixture does not (Qwen2 biases, a tied head, llama3 RoPE
// scaling, head_dim).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ctm/core/error.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "model_test_util.hpp"

namespace ctm::model {
namespace {

Json llama_json() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", 4096},
          {"intermediate_size", 14336},
          {"num_hidden_layers", 32},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 8},
          {"vocab_size", 128256},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"max_position_embeddings", 131072},
          {"bos_token_id", 128000},
          {"eos_token_id", {128001, 128008, 128009}},
          {"rope_scaling",
           {{"factor", 8.0},
            {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0},
            {"original_max_position_embeddings", 8192},
            {"rope_type", "llama3"}}},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}

void expect_config_error(const Json& j, const std::string& fragment) {
  try {
    ModelConfig::from_json(j, "cfg.json");
    ADD_FAILURE() << "accepted " << j.dump();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

TEST(Config, Llama31) {
  const auto c = ModelConfig::from_json(llama_json(), "cfg.json");
  EXPECT_EQ(c.family, Family::Llama);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_kv_heads, 8);
  ASSERT_TRUE(c.rope_scaling);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.num_parameters(), 8030261248LL);  // Llama-3.1-8B
  // to_json -> from_json keeps every field.
  const auto again = ModelConfig::from_json(c.to_json(), "again");
  EXPECT_EQ(again.to_json(), c.to_json());
}

TEST(Config, Qwen2) {
  Json j = {{"architectures", {"Qwen2ForCausalLM"}},
            {"hidden_size", 3584},
            {"intermediate_size", 18944},
            {"num_hidden_layers", 28},
            {"num_attention_heads", 28},
            {"num_key_value_heads", 4},
            {"vocab_size", 152064},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 1000000.0},
            {"tie_word_embeddings", false},
            {"use_sliding_window", false}};
  const auto c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.family, Family::Qwen2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_EQ(c.num_parameters(), 7615616512LL);  // Qwen2.5-7B
}

TEST(Config, ErrorsNameTheField) {
  Json j = llama_json();
  j.erase("hidden_size");
  expect_config_error(j, "\"hidden_size\"");
  j = llama_json();
  j["architectures"] = {"MistralForCausalLM"};
  expect_config_error(j, "MistralForCausalLM");
  j = llama_json();
  j["rope_scaling"]["rope_type"] = "yarn";
  expect_config_error(j, "yarn");
  j = llama_json();
  j["rope_scaling"].erase("low_freq_factor");
  expect_config_error(j, "low_freq_factor");
  j = llama_json();
  j["num_key_value_heads"] = 5;
  expect_config_error(j, "num_key_value_heads");
  j = llama_json();
  j["vocab_size"] = "many";
  expect_config_error(j, "vocab_size");
  j = llama_json();
  j.erase("architectures");
  j.erase("model_type");
  expect_config_error(j, "architectures");
}

// num_parameters() overflowed int64 on sizes describing more than 2^63 parameters (found by the model_config
// fuzz target). Such sizes are rejected naming the field, and the largest sizes accepted count exactly: the
// bounds keep every accepted config far below 2^63 (UBSan aborts on an overflow).
TEST(Config, ParameterCountOfTheLargestAcceptedSizesFitsInt64) {
  Json j = llama_json();
  j["hidden_size"] = int64_t{1} << 62;
  j["num_attention_heads"] = 2;
  j["num_key_value_heads"] = 2;
  expect_config_error(j, "\"hidden_size\" is 4611686018427387904");
  j = llama_json();
  j["vocab_size"] = int64_t{1} << 50;
  expect_config_error(j, "\"vocab_size\" is 1125899906842624");
  j = llama_json();
  j["num_hidden_layers"] = int64_t{1} << 40;
  expect_config_error(j, "\"num_hidden_layers\" is 1099511627776");

  j = llama_json();
  j["hidden_size"] = int64_t{1} << 17;
  j["intermediate_size"] = int64_t{1} << 20;
  j["num_hidden_layers"] = 1024;
  j["num_attention_heads"] = 1024;
  j["num_key_value_heads"] = 1024;
  j["head_dim"] = 1024;
  j["vocab_size"] = int64_t{1} << 24;
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  // D = 2^17, q = kv = F = 2^20, per layer 2D + Dq + 2D kv + qD + 3DF + (q + 2kv) + D + (2F + D); with
  // 1024 layers and an untied 2^24 x D embedding and head (Python integers).
  EXPECT_EQ(ModelConfig::from_json(j, "cfg.json").num_parameters(), 989566370709504LL);
  j = llama_json();
  j["hidden_size"] = 8192;
  j["intermediate_size"] = 28672;
  j["num_hidden_layers"] = 80;
  j["num_attention_heads"] = 64;
  EXPECT_EQ(ModelConfig::from_json(j, "cfg.json").num_parameters(), 70553706496LL);  // Llama-3.1-70B
}

// The llama3 frequency rule, written out per frequency in double (transformers' _compute_llama3_parameters).
std::vector<double> reference_inv_freq(double theta, int64_t dim, const std::optional<RopeScaling>& s) {
  std::vector<double> out;
  for (int64_t i = 0; i < dim; i += 2) {
    double f = 1.0 / std::pow(theta, static_cast<double>(i) / dim);
    if (s) {
      const double old = static_cast<double>(s->original_max_position_embeddings);
      const double wavelen = 2 * M_PI / f;
      if (wavelen > old / s->low_freq_factor) {
        f = f / s->factor;
      } else if (wavelen >= old / s->high_freq_factor) {
        const double smooth =
            (old / wavelen - s->low_freq_factor) / (s->high_freq_factor - s->low_freq_factor);
        f = (1 - smooth) * f / s->factor + smooth * f;
      }
    }
    out.push_back(f);
  }
  return out;
}

TEST(Rope, Llama3InverseFrequencies) {
  const auto c = ModelConfig::from_json(llama_json(), "cfg.json");
  const auto got = rope_inv_freq(c);
  const auto ref = reference_inv_freq(c.rope_theta, c.head_dim, c.rope_scaling);
  ASSERT_EQ(got.size(0), static_cast<int64_t>(ref.size()));
  int scaled = 0, smoothed = 0;
  const auto plain = reference_inv_freq(c.rope_theta, c.head_dim, std::nullopt);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    EXPECT_NEAR(got[i].item<double>() / ref[i], 1.0, 1e-5) << "frequency " << i;
    if (std::abs(ref[i] * 8 - plain[i]) < 1e-12 * plain[i])
      ++scaled;
    else if (ref[i] != plain[i])
      ++smoothed;
  }
  EXPECT_GT(scaled, 0);  // all three bands present
  EXPECT_GT(smoothed, 0);
}

// ---- an independent reference forward
// ----------------------------------------------------------------------------

torch::Tensor ref_rms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return w * (x / std::sqrt((x * x).mean().item<double>() + eps));
}

torch::Tensor ref_linear(const Linear& l, const torch::Tensor& x) {
  auto y = torch::mv(l.weight, x);
  return l.bias.defined() ? y + l.bias : y;
}

// Rotates pairs (i, i + half) of one head's vector by pos * inv_freq[i].
torch::Tensor ref_rope(const torch::Tensor& x, int64_t pos, const std::vector<double>& inv_freq) {
  const int64_t half = x.size(0) / 2;
  auto out = x.clone();
  for (int64_t i = 0; i < half; ++i) {
    const double a = x[i].item<double>(), b = x[i + half].item<double>();
    const double ang = static_cast<double>(pos) * inv_freq[i];
    out[i] = a * std::cos(ang) - b * std::sin(ang);
    out[i + half] = b * std::cos(ang) + a * std::sin(ang);
  }
  return out;
}

std::vector<double> reference_logprobs(Transformer& m, const std::vector<int64_t>& ids) {
  const auto& c = m.config();
  const auto inv_freq = reference_inv_freq(c.rope_theta, c.head_dim, c.rope_scaling);
  const int64_t T = static_cast<int64_t>(ids.size()), H = c.num_heads, K = c.num_kv_heads, Dh = c.head_dim;
  std::vector<torch::Tensor> x;
  for (int64_t id : ids) x.push_back(m.embed_tokens()[id].clone());
  for (auto& L : m.layers()) {
    std::vector<torch::Tensor> q(T), k(T), v(T);
    for (int64_t t = 0; t < T; ++t) {
      const auto h = ref_rms(x[t], L.input_layernorm, c.rms_norm_eps);
      q[t] = ref_linear(L.q_proj, h);
      k[t] = ref_linear(L.k_proj, h);
      v[t] = ref_linear(L.v_proj, h);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<torch::Tensor> heads;
      for (int64_t hd = 0; hd < H; ++hd) {
        const int64_t kv = hd / (H / K);
        const auto qh = ref_rope(q[t].narrow(0, hd * Dh, Dh), t, inv_freq);
        std::vector<double> scores;
        for (int64_t s = 0; s <= t; ++s) {
          const auto kh = ref_rope(k[s].narrow(0, kv * Dh, Dh), s, inv_freq);
          scores.push_back(torch::dot(qh, kh).item<double>() / std::sqrt(static_cast<double>(Dh)));
        }
        const double mx = *std::max_element(scores.begin(), scores.end());
        double z = 0;
        for (double& s : scores) z += (s = std::exp(s - mx));
        auto out = torch::zeros({Dh}, torch::kFloat64);
        for (int64_t s = 0; s <= t; ++s) out += scores[s] / z * v[s].narrow(0, kv * Dh, Dh);
        heads.push_back(out);
      }
      x[t] = x[t] + ref_linear(L.o_proj, torch::cat(heads));
    }
    for (int64_t t = 0; t < T; ++t) {
      const auto h = ref_rms(x[t], L.post_attention_layernorm, c.rms_norm_eps);
      const auto g = ref_linear(L.gate_proj, h);
      x[t] = x[t] + ref_linear(L.down_proj, g * torch::sigmoid(g) * ref_linear(L.up_proj, h));
    }
  }
  std::vector<double> out;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const auto logits = torch::mv(m.lm_head(), ref_rms(x[t], m.final_norm(), c.rms_norm_eps));
    out.push_back((logits - torch::logsumexp(logits, 0))[ids[t + 1]].item<double>());
  }
  return out;
}

void compare_with_reference(const Json& config_json) {
  const auto config = ModelConfig::from_json(config_json, "reference config");
  auto model = init_model(config, 12, torch::kCPU, torch::kFloat64);
  {
    torch::NoGradGuard no_grad;  // non-trivial norms and biases
    for (auto& [name, t] : model->named_parameters()) {
      if (name.find("norm") != std::string::npos) t.uniform_(0.5, 1.5);
      if (name.find(".bias") != std::string::npos) t.normal_(0, 0.2);
      if (name.find("embed") != std::string::npos) t.normal_(0, 1.0);
    }
  }
  const std::vector<std::vector<int64_t>> seqs = {{3, 17, 5, 9, 30, 2, 11, 4, 8, 1, 6}, {7, 7, 21}};
  torch::NoGradGuard no_grad;
  const auto lp = sequence_logprobs(*model, pad_batch(seqs, torch::kCPU));
  for (std::size_t b = 0; b < seqs.size(); ++b) {
    const auto ref = reference_logprobs(*model, seqs[b]);
    const auto got = lp[static_cast<int64_t>(b)].narrow(0, 0, static_cast<int64_t>(ref.size()));
    EXPECT_LT(test::max_abs_diff(got, torch::tensor(ref, torch::kFloat64)), 1e-9) << "sequence " << b;
  }
}

TEST(Reference, Qwen2TiedHeadLlama3RopeGqa) {
  compare_with_reference({{"architectures", {"Qwen2ForCausalLM"}},
                          {"hidden_size", 24},
                          {"intermediate_size", 40},
                          {"num_hidden_layers", 2},
                          {"num_attention_heads", 4},
                          {"num_key_value_heads", 2},
                          {"head_dim", 8},  // != hidden / heads
                          {"vocab_size", 32},
                          {"rms_norm_eps", 1e-6},
                          {"rope_theta", 10000.0},
                          {"tie_word_embeddings", true},
                          {"rope_scaling",
                           {{"rope_type", "llama3"},
                            {"factor", 4.0},
                            {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 64}}}});
}

TEST(Reference, LlamaWithAttentionAndMlpBias) {
  compare_with_reference({{"architectures", {"LlamaForCausalLM"}},
                          {"hidden_size", 16},
                          {"intermediate_size", 24},
                          {"num_hidden_layers", 2},
                          {"num_attention_heads", 2},
                          {"num_key_value_heads", 1},
                          {"vocab_size", 32},
                          {"rms_norm_eps", 1e-5},
                          {"rope_theta", 500000.0},
                          {"attention_bias", true},
                          {"mlp_bias", true}});
}

TEST(Reference, InitModelIsDeterministicAndHfLike) {
  const auto config = ModelConfig::from_json(llama_json(), "x");
  Json small = llama_json();
  small["hidden_size"] = 64;
  small["intermediate_size"] = 96;
  small["num_hidden_layers"] = 2;
  small["num_attention_heads"] = 4;
  small["num_key_value_heads"] = 2;
  small["vocab_size"] = 300;
  const auto c = ModelConfig::from_json(small, "small");
  auto a = init_model(c, 5, torch::kCPU, torch::kFloat32);
  auto b = init_model(c, 5, torch::kCPU, torch::kBFloat16);
  auto d = init_model(c, 6, torch::kCPU, torch::kFloat32);
  EXPECT_TRUE(torch::equal(a->embed_tokens().to(torch::kBFloat16), b->embed_tokens()));
  EXPECT_FALSE(torch::equal(a->embed_tokens(), d->embed_tokens()));
  EXPECT_NEAR(a->embed_tokens().std().item<double>(), 0.02, 0.001);
  EXPECT_EQ(a->final_norm().min().item<float>(), 1.0f);
  EXPECT_FALSE(a->embed_tokens().requires_grad());
  a->set_requires_grad(true);
  for (const auto& t : a->parameters()) EXPECT_TRUE(t.requires_grad());
  (void)config;
}

}  // namespace
}  // namespace ctm::model
