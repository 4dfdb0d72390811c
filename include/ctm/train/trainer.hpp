// The generic training loop, written once for pretraining, LoRA SFT and cDPO: AdamW over a given list of
// tensors, warm-up + schedule, gradient accumulation, global-norm clipping, periodic validation, checkpoints
// that resume to exactly the run that was not interrupted, and a clean stop on SIGTERM.
//
// What is trained is given as loss functions over example indices: the trainer knows nothing of models or
// tokens. A loss function returns a *sum* over its units (target tokens for a language model, pairs for DPO)
// and the number of units; the gradient of an optimizer step is the sum over its micro-batches (and ranks)
// divided by the total number of units, so the result does not depend on how a step is split into
// micro-batches.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ctm/train/optim.hpp"
#include "ctm/train/schedule.hpp"

namespace ctm::train {

struct LossTerms {
  torch::Tensor sum;                      // 0-dim, with autograd during training
  double count = 0.0;                     // units the sum is over (its mean is sum / count)
  std::map<std::string, double> metrics;  // extra sums over the same units (logged as sum / count)
};

// examples: indices into the split; training: true in the optimisation pass (dropout on), false in
// validation.
using LossFn = std::function<LossTerms(const std::vector<int64_t>& examples, bool training)>;

struct Split {
  std::vector<int64_t> lengths;  // per example (tokens); batches group similar lengths
  LossFn loss;
};

// Data parallelism without a dependency on dist/: a rank takes every size()-th micro-batch and the trainer
// sums gradients and loss statistics through this interface (dist implements it over MPI or NCCL). Every rank
// runs the same number of forward and backward passes (ceil(micro-batches / size()) per update and per
// validation), one without a micro-batch of its own running a zero-weighted pass, so collectives inside the
// loss function (a sharded model's all-gathers) match on every rank.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void all_reduce_sum(torch::Tensor& t) = 0;  // in place, contiguous tensor
};

struct TrainerOptions {
  double lr = 3e-4;  // peak learning rate
  AdamWOptions adamw;
  ScheduleOptions schedule;
  double max_grad_norm = 1.0;  // <= 0: no clipping
  int64_t micro_batch_size = 6;
  int64_t grad_accum_steps = 1;
  int64_t epochs = 1;
  int64_t max_steps = -1;        // optimizer updates in all; -1: epochs × updates per epoch
  int64_t megabatch = 50;        // micro-batches per length-sorted group (1: plain shuffle)
  int64_t eval_every = 0;        // updates between validation passes (0: at the end only)
  int64_t eval_batch_size = 0;   // 0: micro_batch_size
  int64_t checkpoint_every = 0;  // updates between checkpoints (0: at the end and on stop only)
  int64_t log_every = 10;        // updates between log lines
  bool keep_best = false;        // at the end, restore the parameters of the lowest validation loss
  std::string checkpoint_dir;    // empty: no checkpoints, no resume
  uint64_t seed = 42;
  std::string label = "train";        // log prefix
  std::function<bool()> should_stop;  // polled after every update; default: ctm::stop_requested()
};

// The number of optimizer updates of a run on `examples` training examples over `world` ranks.
int64_t count_updates(const TrainerOptions& opts, int64_t examples, int64_t world);

struct LogRecord {
  int64_t step = 0;  // updates done
  int64_t epoch = 0;
  double lr = 0.0;
  double loss = 0.0;       // mean training loss of this update
  double grad_norm = 0.0;  // before clipping
  double units = 0.0;      // loss units (e.g. target tokens) in this update
  std::map<std::string, double> metrics;
  std::optional<double> valid_loss;
};

struct TrainResult {
  bool stopped = false;    // stopped on request after writing a checkpoint
  bool resumed = false;    // started from a checkpoint
  int64_t steps_done = 0;  // updates done in all (including before a resume)
  int64_t total_steps = 0;
  std::optional<double> best_valid_loss;
  std::optional<double> last_valid_loss;
  std::vector<LogRecord> history;  // every update (also those before a resume)
};

class Trainer {
 public:
  Trainer(std::vector<TrainableParam> params, TrainerOptions opts, Collective* collective = nullptr);

  // Trains on `train`, validating on `valid` (may have no examples). Resumes from
  // <checkpoint_dir>/checkpoint.pt when it exists; a finished run returns at once.
  TrainResult fit(const Split& train, const Split& valid);

  // Mean validation loss over the whole split (and ranks).
  double validate(const Split& valid);

  // The number of optimizer updates fit() makes for a training split of these lengths.
  int64_t total_steps(const std::vector<int64_t>& train_lengths) const;

  static std::string checkpoint_file(const std::string& dir) { return dir + "/checkpoint.pt"; }

 private:
  struct State {
    int64_t step = 0, epoch = 0, batch_pos = 0;  // next micro-batch of the epoch's list
    std::optional<double> best_valid, last_valid;
    std::vector<LogRecord> history;
    bool finished = false;
  };
  void save_checkpoint(const State& st, const std::string& fingerprint);
  bool load_checkpoint(State& st, const std::string& fingerprint);
  std::string fingerprint(const Split& train, const Split& valid) const;
  void reduce(std::vector<double>& values);

  std::vector<TrainableParam> params_;
  TrainerOptions opts_;
  Collective* collective_;
  AdamW optimizer_;
  void zero_grad_sums();
  void add_grads_to_sums();  // each parameter's .grad into its float64 sum, then zeroed
  void sums_to_grads(
      int64_t world);  // all-reduce the sums over the ranks; .grad = sum (in the parameter's dtype)
  std::vector<torch::Tensor> grad_sums_;    // float64, one per parameter: the update's gradient being summed
  std::vector<torch::Tensor> best_params_;  // copies at the lowest validation loss (keep_best)
};

}  // namespace ctm::train
