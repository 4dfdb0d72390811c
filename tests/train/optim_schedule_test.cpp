// Schedules, clipping and AdamW against hand computations and against torch::optim::AdamW (an independent
// implementation of the same update).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ctm/core/error.hpp"
#include "ctm/train/optim.hpp"
#include "ctm/train/schedule.hpp"

namespace ctm::train {
namespace {

TEST(Schedule, CosineWithWarmupMatchesHandValues) {
  ScheduleOptions o;
  o.kind = ScheduleKind::Cosine;
  o.warmup_steps = 10;
  const int64_t total = 110;                          // 100 decay steps after the warm-up
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 0, total), 0.0);  // transformers: the first update runs at lr 0
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 5, total), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 10, total), 1.0);
  // progress 25/100: 0.5 (1 + cos(pi/4)) = 0.5 + sqrt(2)/4
  EXPECT_NEAR(lr_multiplier(o, 35, total), 0.5 + std::sqrt(2.0) / 4.0, 1e-15);
  EXPECT_NEAR(lr_multiplier(o, 60, total), 0.5, 1e-15);
  EXPECT_NEAR(lr_multiplier(o, 85, total), 0.5 - std::sqrt(2.0) / 4.0, 1e-15);
  EXPECT_NEAR(lr_multiplier(o, 110, total), 0.0, 1e-15);
}

TEST(Schedule, WarmupRatioRoundsUpLikeTransformers) {
  ScheduleOptions o;
  o.warmup_ratio = 0.1;
  EXPECT_EQ(warmup_steps(o, 95), 10);  // ceil(9.5)
  EXPECT_EQ(warmup_steps(o, 100), 10);
  EXPECT_EQ(warmup_steps(o, 3), 1);
  o.warmup_steps = 7;  // an explicit count wins
  EXPECT_EQ(warmup_steps(o, 100), 7);
  o.warmup_steps = 0;
  o.warmup_ratio = 1.5;
  EXPECT_THROW(warmup_steps(o, 100), ctm::Error);
}

TEST(Schedule, LinearConstantAndFloor) {
  ScheduleOptions o;
  o.warmup_steps = 4;
  o.kind = ScheduleKind::Linear;
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 2, 24), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 4, 24), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 9, 24), 0.75);  // (24 - 9) / 20
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 24, 24), 0.0);
  o.kind = ScheduleKind::Constant;
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 1, 24), 0.25);
  EXPECT_DOUBLE_EQ(lr_multiplier(o, 20, 24), 1.0);
  o.kind = ScheduleKind::Cosine;
  o.min_lr_ratio = 0.1;
  EXPECT_NEAR(lr_multiplier(o, 14, 24), 0.1 + 0.9 * 0.5, 1e-15);  // half-way: cos = 0
  EXPECT_NEAR(lr_multiplier(o, 24, 24), 0.1, 1e-15);
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::Cosine);
  EXPECT_THROW(parse_schedule("exp"), ctm::Error);
}

std::vector<TrainableParam> params_with_grads(const std::vector<std::vector<float>>& grads) {
  std::vector<TrainableParam> ps;
  for (size_t i = 0; i < grads.size(); ++i) {
    auto t = torch::zeros({static_cast<int64_t>(grads[i].size())}).requires_grad_(true);
    t.mutable_grad() = torch::tensor(grads[i]);
    ps.push_back({"p" + std::to_string(i), t, true});
  }
  return ps;
}

TEST(Clip, GlobalNormAndScalingByHand) {
  // norms: |(3, 4)| = 5, |(12)| = 12, global sqrt(25 + 144) = 13
  auto ps = params_with_grads({{3.f, 4.f}, {12.f}});
  EXPECT_NEAR(global_grad_norm(ps), 13.0, 1e-12);
  const double norm = clip_grad_norm(ps, 6.5);
  EXPECT_NEAR(norm, 13.0, 1e-12);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_NEAR(ps[0].tensor.grad()[0].item<double>(), 3.0 * coef, 1e-6);
  EXPECT_NEAR(ps[0].tensor.grad()[1].item<double>(), 4.0 * coef, 1e-6);
  EXPECT_NEAR(ps[1].tensor.grad()[0].item<double>(), 12.0 * coef, 1e-6);
  EXPECT_NEAR(global_grad_norm(ps), 6.5, 1e-5);

  auto unclipped = params_with_grads({{3.f, 4.f}, {12.f}});
  EXPECT_NEAR(clip_grad_norm(unclipped, 20.0), 13.0, 1e-12);  // below the limit: untouched
  EXPECT_EQ(unclipped[1].tensor.grad()[0].item<float>(), 12.f);
  EXPECT_NEAR(clip_grad_norm(unclipped, 0.0), 13.0, 1e-12);  // disabled
  EXPECT_EQ(unclipped[0].tensor.grad()[1].item<float>(), 4.f);
}

TEST(AdamW, FirstStepByHand) {
  // Step 1: m = (1-b1) g, v = (1-b2) g^2, m_hat = g, v_hat = g^2, update = lr * g / (|g| + eps) after decay.
  auto p = torch::tensor({1.0f, -2.0f}).requires_grad_(true);
  p.mutable_grad() = torch::tensor({0.5f, -0.25f});
  AdamWOptions o;
  o.weight_decay = 0.1;
  AdamW opt({{"p", p, true}}, o);
  opt.step(0.01);
  const double d = 1.0 - 0.01 * 0.1;
  EXPECT_NEAR(p[0].item<double>(), 1.0 * d - 0.01 * 0.5 / (0.5 + 1e-8), 1e-6);
  EXPECT_NEAR(p[1].item<double>(), -2.0 * d + 0.01 * 0.25 / (0.25 + 1e-8), 1e-6);
}

TEST(AdamW, MatchesTorchAdamWOverSeveralSteps) {
  torch::manual_seed(3);
  auto w0 = torch::randn({4, 3});
  auto b0 = torch::randn({3});
  auto w_mine = w0.clone().requires_grad_(true), b_mine = b0.clone().requires_grad_(true);
  auto w_ref = w0.clone().requires_grad_(true), b_ref = b0.clone().requires_grad_(true);
  AdamWOptions o;
  o.beta1 = 0.8;
  o.beta2 = 0.95;
  o.eps = 1e-6;
  o.weight_decay = 0.05;
  AdamW mine({{"w", w_mine, true}, {"b", b_mine, false}}, o);
  // torch's AdamW with two groups: the bias without decay.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{w_ref},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(0.1).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.05)));
  groups.emplace_back(std::vector<torch::Tensor>{b_ref},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(0.1).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.0)));
  torch::optim::AdamW ref(std::move(groups));
  const double lrs[] = {0.1, 0.05, 0.02, 0.08, 0.01, 0.03};
  for (int s = 0; s < 6; ++s) {
    auto x = torch::randn({5, 4});
    auto loss_mine = (torch::tanh(x.matmul(w_mine) + b_mine)).pow(2).sum();
    auto loss_ref = (torch::tanh(x.matmul(w_ref) + b_ref)).pow(2).sum();
    mine.zero_grad();
    ref.zero_grad();
    loss_mine.backward();
    loss_ref.backward();
    for (auto& g : ref.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lrs[s]);
    mine.step(lrs[s]);
    ref.step();
    const double err =
        std::max((w_mine - w_ref).abs().max().item<double>(), (b_mine - b_ref).abs().max().item<double>());
    EXPECT_LE(err, 1e-7) << "step " << s << " max abs error " << err;
  }
  EXPECT_EQ(mine.steps_taken(), 6);
}

TEST(AdamW, DefaultDecayGroupsSkipVectors) {
  auto m = torch::zeros({2, 2}).requires_grad_(true);
  auto v = torch::zeros({2}).requires_grad_(true);
  auto groups = default_decay_groups({{"m", m}, {"v", v}});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_TRUE(groups[0].decay);
  EXPECT_FALSE(groups[1].decay);
  EXPECT_THROW(AdamW({{"frozen", torch::zeros({2}), true}}, AdamWOptions{}), ctm::Error);
}

}  // namespace
}  // namespace ctm::train
