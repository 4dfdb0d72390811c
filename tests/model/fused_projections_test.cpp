// q/k/v and gate/up as one product each (the GPU default) against the separate products: the same logits to
// float rounding, with and without LoRA adapters on the fused projections, and the fallback once a weight no
// longer lies in the stacked storage.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ctm/model/loader.hpp"
#include "ctm/model/lora.hpp"
#include "model_test_util.hpp"

using namespace ctm;
using namespace ctm::model;

namespace {

torch::Tensor logits_of(Transformer& m, bool fused) {
  torch::NoGradGuard no_grad;
  m.set_fused_projections(fused);
  const auto ids = torch::tensor({1, 17, 42, 7, 99, 3, 250, 11}, torch::kInt64).view({2, 4});
  const auto pos = torch::arange(4, torch::kInt64).repeat({2, 1});
  CausalAttention attn;
  return m.forward(ids, pos, attn);
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

}  // namespace

TEST(FusedProjections, LoadedWeightsTileTheStackedStorageAndGiveTheSameLogits) {
  auto m = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  EXPECT_FALSE(m->fused_projections()) << "off by default on the CPU";
  for (int64_t i = 0; i < m->config().num_layers; ++i)
    EXPECT_TRUE(m->projections_stacked(i)) << "layer " << i;
  const auto separate = logits_of(*m, false), fused = logits_of(*m, true);
  EXPECT_LT(rel_diff(fused, separate), 1e-5);
}

TEST(FusedProjections, LoraTermsAreAddedToTheirSlices) {
  auto m = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  LoraConfig cfg;
  cfg.r = 4;
  cfg.target_modules = {"q_proj", "v_proj", "up_proj"};
  add_lora(*m, cfg, 7);
  torch::manual_seed(1);
  for (auto& t : m->lora_parameters()) t.data().normal_(0, 0.1);  // B non-zero: the adapters matter
  const auto base = [&] {
    m->set_lora_enabled(false);
    auto l = logits_of(*m, true);
    m->set_lora_enabled(true);
    return l;
  }();
  const auto separate = logits_of(*m, false), fused = logits_of(*m, true);
  EXPECT_GT(rel_diff(separate, base), 1e-3) << "the adapters should change the logits";
  EXPECT_LT(rel_diff(fused, separate), 1e-5);
}

TEST(FusedProjections, AReplacedWeightFallsBackToSeparateProducts) {
  auto m = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  const auto before = logits_of(*m, false);
  auto& L = m->layers()[1];
  L.k_proj.weight = L.k_proj.weight * 2;  // a new tensor, outside the stacked storage
  EXPECT_FALSE(m->projections_stacked(1));
  EXPECT_TRUE(m->projections_stacked(0));
  const auto separate = logits_of(*m, false), fused = logits_of(*m, true);
  EXPECT_GT(rel_diff(separate, before), 1e-4) << "the replaced weight should be used";
  EXPECT_LT(rel_diff(fused, separate), 1e-5);
}
