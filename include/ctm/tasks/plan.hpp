// `--dry_run` of the long tasks: every input a run would read is checked as the run checks it (the model
// folder without reading a weight, the adapters, the data files, the CE scores, the output locations), then
// the plan is printed (items, ranks, outputs, what resumes, the memory per rank) and nothing is written. A
// job that would fail after an hour in the queue fails in a second on the login node instead.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ctm/data/dataset.hpp"
#include "ctm/model/config.hpp"
#include "ctm/model/footprint.hpp"
#include "ctm/tasks/task.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::tasks {

void add_dry_run_option(po::options_description& desc);
bool dry_run(const TaskContext& ctx);

// A model folder checked without loading it: config.json, the safetensors headers (they hold at least the
// parameters config.json describes) and the tokenizer against the vocabulary.
struct ModelCheck {
  std::string dir;
  model::ModelConfig config;
  text::Tokenizer tokenizer;
};
ModelCheck check_model_folder(const std::string& dir);
// A PEFT adapter folder checked without loading it: adapter_config.json and the safetensors header. Returns
// "r R on N projections".
std::string check_adapter_folder(const std::string& dir);

// Bytes per weight of the model on --device (float32 on the CPU, bfloat16 on CUDA).
int64_t device_dtype_bytes(const CommonOptions& common);

class Plan {
 public:
  explicit Plan(std::string task) : task_(std::move(task)) {}
  void add(const std::string& label, const std::string& value) { lines_.emplace_back(label, value); }
  void model(const TaskContext& ctx, const ModelCheck& m);  // the model and the ranks
  void memory(const model::Footprint& f);
  // What an earlier run left for this output: a journal or a training checkpoint it resumes from, or the
  // complete output (if_complete: what the run does with it).
  void resume_state(const std::string& output, const std::string& if_complete);
  void print(const TaskContext& ctx) const;  // rank 0, on stdout

 private:
  std::string task_;
  std::vector<std::pair<std::string, std::string>> lines_;
};

struct LoraTraining;

// The plan of a task that samples n answers to the dataset's prompt of every problem (up to max_new_tokens
// each): the model (+ --lora_path's adapter), the items, and the memory (the whole model on every rank, the
// KV cache of --max_batch sequences within --kv_budget_mb).
Plan sampling_plan(const TaskContext& ctx, const std::string& task, const std::string& model_dir,
                   data::DatasetKind kind, const std::vector<data::Problem>& problems, int64_t n,
                   int64_t max_new_tokens, const std::string& split);
// The items and memory lines of a LoRA training run on `examples` examples of up to `longest` tokens
// (`sequences` per example: 2 for a preference pair).
void plan_training(Plan& plan, const TaskContext& ctx, const ModelCheck& m, const LoraTraining& t,
                   const std::string& what, int64_t examples, int64_t sequences, int64_t longest);

}  // namespace ctm::tasks
