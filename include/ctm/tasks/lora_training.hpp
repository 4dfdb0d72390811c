// What the LoRA training tasks share (train_ce, train_sft, train_cdpo): the adapter and optimiser options
// with each task's defaults (the release's hyper-parameters), the base model, the data-parallel trainer, and
// the adapter folder written as a whole: PEFT files, metrics.jsonl (TRL's names, one line per logging step)
// and training_info.json. Training state lives beside it in "<adapter>.state/" and resumes exactly.
#pragma once

#include <memory>
#include <string>

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
};
// The options, range-checked (UsageError naming the option).
LoraTraining lora_training(const TaskContext& ctx, const std::string& label);

// Data parallelism for the trainer over the task's communicator (CPU tensors through MPI).
std::unique_ptr<train::Collective> make_collective(const TaskContext& ctx);

// The base model of --model_path / --model_name on --device (float32 on CPU, bfloat16 on CUDA), its folder in
// *dir.
std::shared_ptr<model::Transformer> load_base_model(const CommonOptions& common, std::string* dir);

// The adapter folder of a training stage: --out, else <output_dir>/checkpoints/<model>/<dataset>/<name>.
std::string adapter_dir(const TaskContext& ctx, const std::string& model, const std::string& name);

// Adds fresh adapters (seeded by --seed) to `model`, trains them on `train` (validating on `valid`), and
// writes `out` as a whole; `info` (data files, counts, the task's own settings) goes into training_info.json.
// On a stop request: checkpoint, then ctm::Stopped.
train::TrainResult train_adapter(const TaskContext& ctx, model::Transformer& model, const LoraTraining& t,
                                 const train::Split& train, const train::Split& valid, const std::string& out,
                                 const std::string& base_dir, const Json& info);

}  // namespace ctm::tasks
