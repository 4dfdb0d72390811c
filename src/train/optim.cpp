#include "ctm/train/optim.hpp"

#include <cmath>

#include "ctm/core/error.hpp"

namespace ctm::train {

std::vector<TrainableParam> default_decay_groups(
    const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  std::vector<TrainableParam> out;
  out.reserve(named.size());
  for (const auto& [name, t] : named) out.push_back({name, t, t.dim() >= 2});
  return out;
}

AdamW::AdamW(std::vector<TrainableParam> params, AdamWOptions opts)
    : params_(std::move(params)), opts_(opts) {
  CTM_CHECK(opts_.beta1 >= 0 && opts_.beta1 < 1 && opts_.beta2 >= 0 && opts_.beta2 < 1, "AdamW betas (",
            opts_.beta1, ", ", opts_.beta2, ") must lie in [0, 1)");
  CTM_CHECK(opts_.eps >= 0 && opts_.weight_decay >= 0, "AdamW eps and weight decay must be >= 0");
  torch::NoGradGuard no_grad;
  for (const auto& p : params_) {
    CTM_CHECK(p.tensor.defined() && p.tensor.requires_grad(), "trainable parameter '", p.name,
              "' does not require a gradient");
    exp_avg_.push_back(torch::zeros_like(p.tensor, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p.tensor, torch::MemoryFormat::Preserve));
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bias_correction1 = 1.0 - std::pow(opts_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(opts_.beta2, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].tensor;
    const auto& grad = p.grad();
    if (!grad.defined()) continue;
    if (params_[i].decay && opts_.weight_decay != 0.0) p.mul_(1.0 - lr * opts_.weight_decay);
    exp_avg_[i].mul_(opts_.beta1).add_(grad, 1.0 - opts_.beta1);
    exp_avg_sq_[i].mul_(opts_.beta2).addcmul_(grad, grad, 1.0 - opts_.beta2);
    auto denom = (exp_avg_sq_[i].sqrt() / bias_correction2_sqrt).add_(opts_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_) {
    auto& g = p.tensor.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

double global_grad_norm(const std::vector<TrainableParam>& params) {
  torch::NoGradGuard no_grad;
  double sum_sq = 0.0;
  for (const auto& p : params) {
    const auto& g = p.tensor.grad();
    if (!g.defined()) continue;
    const double n = g.detach().to(torch::kFloat64).norm().item<double>();
    sum_sq += n * n;
  }
  return std::sqrt(sum_sq);
}

double clip_grad_norm(const std::vector<TrainableParam>& params, double max_norm) {
  const double norm = global_grad_norm(params);
  if (max_norm <= 0.0) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    torch::NoGradGuard no_grad;
    for (const auto& p : params) {
      auto& g = p.tensor.mutable_grad();
      if (g.defined()) g.mul_(coef);
    }
  }
  return norm;
}

}  // namespace ctm::train
