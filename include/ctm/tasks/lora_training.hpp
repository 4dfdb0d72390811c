// What the LoRA training tasks share (train_ce, train_sft, train_cdpo): the adapter and optimiser options
// with each task's defaults (the release's hyper-parameters), the base model, the data-parallel trainer, and
// the adapter folder written as a whole: PEFT files, metrics.jsonl (TRL's names, one line per logging step)
// and training_info.json. Training state lives beside it in "<adapter>.state/" and resumes exactly.
#pragma once

#include <memory>
#include <string>

#include "ctm/dist/sharded_model.hpp"
#include "ctm/io/json.hpp"
#include "ctm/model/transformer.hpp"
#include "ctm/tasks/task.hpp"
#include "ctm/train/trainer.hpp"

namespace ctm::tasks {

struct LoraTrainingDefaults {
  int64_t r = 8;
  double alpha = 16, dropout = 0.0;
  const char* targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
  double lr = 3e-4;
  const char* schedule = "cosine";
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  int64_t epochs = 1, batch_size = 6, grad_accum = 1;
  double weight_decay = 0.0;
  int64_t max_length = 1024, valid_examples = 0, eval_every = 0;
  int64_t shuffle_seed = 42;
};
void add_lora_training_options(po::options_description& desc, const LoraTrainingDefaults& defaults);
// The release's cDPO settings (adapter, schedule, batch), shared by train_cdpo and the +SFT baseline.
LoraTrainingDefaults cdpo_training_defaults();

struct LoraTraining {
  model::LoraConfig lora;
  train::TrainerOptions trainer;
  int64_t max_length = 1024, valid_examples = 0;
  bool fsdp = false;  // --fsdp: the base sharded over the ranks
};
// A UsageError when --lora_path is given to a task that trains or scores with adapters of its own.
void reject_lora_path(const TaskContext& ctx, const std::string& task);
// The options, range-checked (UsageError naming the option).
LoraTraining lora_training(const TaskContext& ctx, const std::string& label);

// The base model of --model_path / --model_name on this rank's device (rank_device; float32 on CPU, bfloat16
// on CUDA), with the communicator for tensors there (dist::device_comm: NCCL for CUDA, MPI for the CPU).
// Sharded: every rank keeps its shard of each base weight (dist::ShardedModel); then every forward and
// backward is collective, so only data-parallel training, where every rank runs the same passes, may use it.
struct BaseModel {
  std::string dir;
  std::shared_ptr<dist::Comm> comm;
  std::shared_ptr<train::Collective> collective;  // over comm for the trainer; null with one rank
  std::shared_ptr<dist::ShardedModel> sharded;    // null when whole
  std::shared_ptr<model::Transformer> model;
};
BaseModel load_base_model(const TaskContext& ctx, bool sharded);

// The adapter folder of a training stage: --out, else <output_dir>/checkpoints/<model>/<dataset>/<name>.
std::string adapter_dir(const TaskContext& ctx, const std::string& model, const std::string& name);

// Adds fresh adapters (seeded by --seed) to the base, trains them on `train` (validating on `valid`) with the
// ranks' gradients summed by base.collective, and writes `out` as a whole; `info` (data files, counts, the
// task's own settings) goes into training_info.json. On a stop request: checkpoint, then ctm::Stopped.
train::TrainResult train_adapter(const TaskContext& ctx, BaseModel& base, const LoraTraining& t,
                                 const train::Split& train, const train::Split& valid, const std::string& out,
                                 const Json& info);

}  // namespace ctm::tasks
