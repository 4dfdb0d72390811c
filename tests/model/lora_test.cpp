// LoRA: B = 0 gives the base, adapters off give the base, merged == unmerged, PEFT save -> load is exact with
// PEFT's key names, and the gradients of the LoRA (and base) parameters match central finite differences in
// float64.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ctm/core/error.hpp"
#include "ctm/io/safetensors.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "ctm/model/lora.hpp"
#include "model_test_util.hpp"

namespace ctm::model {
namespace {

const std::vector<std::vector<int64_t>> kSeqs = {
    {256, 130, 3, 195, 76, 176, 22, 49, 180, 133}, {256, 155, 134, 253, 241}, {256, 75, 12}};

LoraConfig all_targets(int64_t r = 4, double alpha = 8) {
  LoraConfig c;
  c.r = r;
  c.alpha = alpha;
  c.target_modules = projection_names();
  return c;
}

torch::Tensor logprobs(Transformer& m) {
  torch::NoGradGuard no_grad;
  return sequence_logprobs(m, pad_batch(kSeqs, m.device()));
}

// Gives every B a random value so the adapters change the output.
void randomize_B(Transformer& m, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& [name, t] : m.named_lora_parameters())
    if (name.find("lora_B") != std::string::npos)
      t.copy_(torch::empty(t.sizes(), t.options()).normal_(0, 0.05, gen));
}

TEST(Lora, InitLikePeftAndBZeroEqualsBase) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  const auto base = logprobs(*model);
  add_lora(*model, all_targets(), 7);
  ASSERT_TRUE(model->has_lora());
  const auto params = model->named_lora_parameters();
  ASSERT_EQ(params.size(), 3u * 7u * 2u);
  EXPECT_EQ(params[0].first, "model.layers.0.self_attn.q_proj.lora_A.weight");
  for (const auto& [name, t] : params) {
    EXPECT_TRUE(t.requires_grad()) << name;
    if (name.find("lora_B") != std::string::npos) {
      EXPECT_EQ(t.abs().max().item<float>(), 0.0f) << name;
    } else {
      const double bound = 1.0 / std::sqrt(static_cast<double>(t.size(1)));  // kaiming_uniform(a = sqrt(5))
      EXPECT_LE(t.abs().max().item<double>(), bound) << name;
      EXPECT_GT(t.abs().max().item<double>(), 0.8 * bound) << name;  // spread over the range, not tiny
      EXPECT_NEAR(t.std().item<double>(), bound / std::sqrt(3.0), 0.35 * bound) << name;
    }
  }
  EXPECT_EQ(test::max_abs_diff(logprobs(*model), base), 0.0);
  // Same seed, same adapters.
  auto again = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  add_lora(*again, all_targets(), 7);
  EXPECT_TRUE(torch::equal(again->named_lora_parameters()[5].second, params[5].second));
}

TEST(Lora, SwitchedOffGivesBaseAndMergedEqualsUnmerged) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  const auto base = logprobs(*model);
  add_lora(*model, all_targets(), 3);
  randomize_B(*model, 11);
  const auto with_lora = logprobs(*model);
  EXPECT_GT(test::max_abs_diff(with_lora, base), 1e-3);  // the adapters matter
  model->set_lora_enabled(false);
  EXPECT_EQ(test::max_abs_diff(logprobs(*model), base), 0.0);
  model->set_lora_enabled(true);
  merge_lora(*model);
  EXPECT_FALSE(model->has_lora());
  EXPECT_LT(test::max_abs_diff(logprobs(*model), with_lora), 1e-5);
}

TEST(Lora, MergedWeightIsWPlusScaledBA) {
  // Independent computation of the merged weight for one projection, in double.
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  LoraConfig cfg = all_targets(2, 6);
  cfg.target_modules = {"v_proj"};
  add_lora(*model, cfg, 5);
  randomize_B(*model, 6);
  const auto& l = model->layers()[1].v_proj;
  const auto W = l.weight.to(torch::kFloat64).clone(), A = l.lora->A_rI.to(torch::kFloat64).detach(),
             B = l.lora->B_Or.to(torch::kFloat64).detach();
  auto expect = W.clone();
  auto e = expect.accessor<double, 2>();
  auto a = A.accessor<double, 2>();
  auto b = B.accessor<double, 2>();
  for (int64_t o = 0; o < W.size(0); ++o)
    for (int64_t i = 0; i < W.size(1); ++i)
      for (int64_t k = 0; k < 2; ++k) e[o][i] += 3.0 * b[o][k] * a[k][i];  // scaling = 6 / 2
  merge_lora(*model);
  EXPECT_LT(test::max_abs_diff(model->layers()[1].v_proj.weight, expect), 1e-6);
}

TEST(Lora, PeftSaveLoadRoundTripIsExact) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  LoraConfig cfg = all_targets(4, 16);
  cfg.target_modules = {"q_proj", "v_proj", "down_proj"};
  cfg.dropout = 0.1;
  add_lora(*model, cfg, 9);
  randomize_B(*model, 10);
  const std::string dir = test::fresh_dir("peft");
  save_peft(*model, dir, "llama3-tiny-random");

  // PEFT's layout and key names.
  const Json config = read_json_file(dir + "/adapter_config.json");
  EXPECT_EQ(config.at("peft_type"), "LORA");
  EXPECT_EQ(config.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(config.at("r"), 4);
  EXPECT_EQ(config.at("lora_alpha"), 16.0);
  EXPECT_EQ(config.at("lora_dropout"), 0.1);
  EXPECT_EQ(config.at("target_modules"), Json({"q_proj", "v_proj", "down_proj"}));
  EXPECT_EQ(config.at("base_model_name_or_path"), "llama3-tiny-random");
  io::SafetensorsFile st(dir + "/adapter_model.safetensors");
  EXPECT_EQ(st.tensors().size(), 3u * 3u * 2u);
  EXPECT_TRUE(st.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_TRUE(st.contains("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"));
  EXPECT_EQ(st.info("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight").shape,
            (std::vector<int64_t>{64, 4}));
  EXPECT_EQ(st.info("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight").shape,
            (std::vector<int64_t>{4, 64}));

  auto other = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  load_peft(*other, dir);
  ASSERT_TRUE(other->lora_config());
  EXPECT_EQ(other->lora_config()->r, 4);
  EXPECT_EQ(other->lora_config()->alpha, 16);
  const auto a = model->named_lora_parameters(), b = other->named_lora_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  EXPECT_EQ(test::max_abs_diff(logprobs(*other), logprobs(*model)), 0.0);
}

TEST(Lora, LoadRejectsBadAdapters) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  add_lora(*model, all_targets(), 1);
  const std::string dir = test::fresh_dir("bad");
  save_peft(*model, dir, "x");
  auto expect_error = [&](const std::string& frag) {
    auto m = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
    try {
      load_peft(*m, dir);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
    }
  };
  // A rank that does not match the config.
  Json cfg = read_json_file(dir + "/adapter_config.json");
  cfg["r"] = 8;
  write_json_file_atomic(dir + "/adapter_config.json", cfg);
  expect_error("rank");
  cfg["r"] = 4;
  cfg["use_dora"] = true;
  write_json_file_atomic(dir + "/adapter_config.json", cfg);
  expect_error("DoRA");
  cfg["use_dora"] = false;
  write_json_file_atomic(dir + "/adapter_config.json", cfg);
  // An unknown key.
  const std::vector<float> x(4, 0.f);
  io::write_safetensors(dir + "/adapter_model.safetensors",
                        {{"base_model.model.model.layers.0.self_attn.q_proj.lora_embedding_A",
                          io::DType::F32,
                          {4},
                          x.data(),
                          {}}});
  expect_error("unexpected key");
  // A shape that does not fit the projection.
  const std::vector<float> y(4 * 10, 0.f), z(64 * 4, 0.f);
  io::write_safetensors(dir + "/adapter_model.safetensors",
                        {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                          io::DType::F32,
                          {4, 10},
                          y.data(),
                          {}},
                         {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
                          io::DType::F32,
                          {64, 4},
                          z.data(),
                          {}}});
  expect_error("lora_A.weight\": shape");
}

// Loss = a fixed weighting of the sequence log-probabilities (as DPO uses them), in float64.
torch::Tensor weighted_loss(Transformer& m, const PaddedBatch& batch, const torch::Tensor& w) {
  return (sequence_logprobs(m, batch) * w).sum();
}

ModelConfig small_config(bool qwen) {
  Json j = {{"architectures", {qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
            {"hidden_size", 16},
            {"intermediate_size", 24},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"vocab_size", 32},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 10000.0},
            {"tie_word_embeddings", qwen}};
  return ModelConfig::from_json(j, "small_config");
}

// Central differences of the loss w.r.t. a few entries of `param` vs autograd.
void check_gradient(Transformer& m, const PaddedBatch& batch, const torch::Tensor& w, torch::Tensor param,
                    const std::string& name) {
  ASSERT_TRUE(param.grad().defined()) << name;
  const auto grad = param.grad().clone();
  const auto flat = param.view(-1);
  const int64_t n = flat.size(0);
  double worst = 0;
  for (int64_t k = 0; k < 6; ++k) {
    const int64_t idx = (k * 7919) % n;
    const double eps = 1e-6;
    double plus, minus;
    {
      torch::NoGradGuard no_grad;
      const double orig = flat[idx].item<double>();
      flat[idx].fill_(orig + eps);
      plus = weighted_loss(m, batch, w).item<double>();
      flat[idx].fill_(orig - eps);
      minus = weighted_loss(m, batch, w).item<double>();
      flat[idx].fill_(orig);
    }
    const double numeric = (plus - minus) / (2 * eps);
    const double analytic = grad.view(-1)[idx].item<double>();
    const double err = std::abs(numeric - analytic) / std::max(1.0, std::abs(numeric));
    worst = std::max(worst, err);
    EXPECT_LT(err, 1e-6) << name << "[" << idx << "]: autograd " << analytic << ", finite differences "
                         << numeric;
  }
  (void)worst;
}

void gradient_check(bool qwen) {
  auto model = init_model(small_config(qwen), 3, torch::kCPU, torch::kFloat64);
  {
    torch::NoGradGuard no_grad;  // non-trivial biases (Qwen2) so their gradients are exercised too
    for (auto& [name, t] : model->named_parameters())
      if (name.find(".bias") != std::string::npos) t.normal_(0, 0.1);
  }
  add_lora(*model, all_targets(2, 4), 4);
  // Adapters are float32 by design; for the float64 check convert them to float64 in place.
  for (auto& L : model->layers())
    for (const auto& p : projection_names()) {
      auto& lora = L.projection(p)->lora;
      lora->A_rI = lora->A_rI.detach().to(torch::kFloat64).requires_grad_(true);
      lora->B_Or = lora->B_Or.detach().to(torch::kFloat64).requires_grad_(true);
    }
  randomize_B(*model, 8);
  model->set_requires_grad(true);  // base too: full-parameter pretraining uses the same backward
  const auto batch = pad_batch({{1, 5, 9, 3, 30, 2}, {4, 8, 15}}, torch::kCPU);
  const auto w = torch::rand({2, 5}, torch::kFloat64) - 0.3;
  weighted_loss(*model, batch, w).backward();
  for (auto& [name, t] : model->named_lora_parameters()) {
    if (name.find("layers.1.") == std::string::npos &&
        name.find("layers.0.self_attn.q_proj") == std::string::npos)
      continue;
    check_gradient(*model, batch, w, t, name);
  }
  for (auto& [name, t] : model->named_parameters()) {
    if (name.find("layers.0.") != std::string::npos && name.find("norm") == std::string::npos &&
        name.find("q_proj") == std::string::npos && name.find("bias") == std::string::npos)
      continue;
    check_gradient(*model, batch, w, t, name);
  }
}

TEST(Lora, GradientsMatchFiniteDifferencesLlama) {
  gradient_check(false);
}
TEST(Lora, GradientsMatchFiniteDifferencesQwen2TiedHead) {
  gradient_check(true);
}

TEST(Lora, DropoutOnlyInTraining) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  LoraConfig cfg = all_targets();
  cfg.dropout = 0.5;
  add_lora(*model, cfg, 2);
  randomize_B(*model, 3);
  const auto eval1 = logprobs(*model);
  EXPECT_EQ(test::max_abs_diff(logprobs(*model), eval1), 0.0);
  model->set_training(true);
  torch::manual_seed(0);
  EXPECT_GT(test::max_abs_diff(logprobs(*model), eval1), 1e-4);
  model->set_training(false);
  EXPECT_EQ(test::max_abs_diff(logprobs(*model), eval1), 0.0);
}

}  // namespace
}  // namespace ctm::model
