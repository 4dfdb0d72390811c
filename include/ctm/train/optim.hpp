// AdamW (decoupled weight decay, Loshchilov & Hutter) and global-norm gradient clipping over an explicit list
// of trainable tensors. Written out (rather than torch::optim::AdamW) so the state is plain tensors the
// trainer can checkpoint, shard and compare; the arithmetic is torch.optim.AdamW's, operation for operation.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ctm::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// A trainable tensor and whether weight decay applies to it (matrices yes; norms and biases no, as HF
// Trainer).
struct TrainableParam {
  std::string name;
  torch::Tensor tensor;  // requires_grad
  bool decay = true;
};

// Named params with decay on tensors of rank >= 2 only.
std::vector<TrainableParam> default_decay_groups(
    const std::vector<std::pair<std::string, torch::Tensor>>& named);

class AdamW {
 public:
  AdamW(std::vector<TrainableParam> params, AdamWOptions opts);

  // One update with learning rate lr from the current .grad() of every param (a param without grad is
  // skipped).
  void step(double lr);
  void zero_grad();  // sets every grad to zero (keeps the buffers)

  const std::vector<TrainableParam>& params() const { return params_; }
  const AdamWOptions& options() const { return opts_; }
  int64_t steps_taken() const { return step_; }

  // The state for checkpoints: step count and the first and second moments, one pair per param.
  std::vector<torch::Tensor>& exp_avg() { return exp_avg_; }
  std::vector<torch::Tensor>& exp_avg_sq() { return exp_avg_sq_; }
  void set_steps_taken(int64_t s) { step_ = s; }

 private:
  std::vector<TrainableParam> params_;
  AdamWOptions opts_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

// The global L2 norm of the gradients of `params` (params without a gradient count as zero).
double global_grad_norm(const std::vector<TrainableParam>& params);

// torch.nn.utils.clip_grad_norm_: scales every gradient by max_norm / (norm + 1e-6) when that is below 1.
// Returns the norm before clipping. max_norm <= 0 disables clipping (the norm is still returned).
double clip_grad_norm(const std::vector<TrainableParam>& params, double max_norm);

}  // namespace ctm::train
