// Helpers shared by the tasks: where data and models live, and the per-rank thread set-up.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/tasks/task.hpp"

namespace ctm::tasks {

// The project's data/ folder (prompts, test sets, the embedded tiny model): $CTM_DATA_DIR, else the source
// tree's.
std::string data_dir();

// The model folder for a run: --model_path, else $CTM_MODELS/<model_name>, else the embedded
// data/models/<name>. Errors name what was tried.
std::string resolve_model_path(const CommonOptions& common);

// This rank's device from --device and --gpus (dist::rank_device): with --device cuda, GPU local_rank of
// --gpus or of every visible GPU; an error when a node runs more ranks than it has GPUs.
torch::Device rank_device(const CommonOptions& common, const dist::Comm& comm);

// The model's name in output paths: --model_name, else the model folder's name.
std::string model_label(const CommonOptions& common, const std::string& model_dir);

// The folder a task writes under: <output_dir>/<sub>.
std::string output_path(const CommonOptions& common, const std::string& sub);

// `path` with its suffix `old` (when it has it) replaced by `suffix`: ("a.rollouts.h5", ".h5", ".stats.json")
// -> "a.rollouts.stats.json"; without `old`, `suffix` is appended.
std::string with_suffix_replaced(const std::string& path, const std::string& old, const std::string& suffix);

// A task option's value, checked against its range (ctm::UsageError naming the option otherwise).
int64_t int_option(const TaskContext& ctx, const char* name, int64_t lo, int64_t hi);
double real_option(const TaskContext& ctx, const char* name, double lo, double hi);

// Whether the user gave option `name` (command line or --config), not just its default.
bool option_given(const TaskContext& ctx, const char* name);

// The non-empty items of a comma-separated option value ("q_proj,v_proj", "b1,tiny").
std::vector<std::string> split_commas(const std::string& s);

// What tells apart the outputs of runs with other sampling settings, so one never overwrites another's:
// "T1.00" (two decimals, as the release's GSM8K.dpo_top_k1.T0.50.json), then ".n16" when n differs from the
// task's default n and ".seed7" when the seed is not the default 42.
std::string run_tag(double t, int64_t n, int64_t default_n, uint64_t seed);

// The run tag of the startup data a task samples or reads: --t (default: the paper's temperature for the
// model) and --sampling_n (default 64), and --seed.
std::string startup_tag(const TaskContext& ctx, const std::string& model);

// prepare_startup_data's outputs under <output_dir>/data/<model>/ for one run tag: the graded samples (and
// the settings file committed with them), the SFT file and the DPO pairs (the release's dpo_top_k1 name).
struct StartupDataPaths {
  std::string samples, samples_config, sft, dpo;
};
StartupDataPaths startup_data_paths(const CommonOptions& common, const std::string& model,
                                    const std::string& tag);

// evaluation's outputs: <output_dir>/output/<model>/<dataset>/<base|lora-NAME>/result_{t}.jsonl and
// summary_{t}.json, where {t} is the temperature as the release writes it ("0", "0.5"), then ".nN" and
// ".seedS" when n is not 1 and the seed not 42.
struct EvaluationPaths {
  std::string result, summary;
};
EvaluationPaths evaluation_paths(const CommonOptions& common, const std::string& model_dir, int64_t n);

// One torch intra-op thread per rank; OpenBLAS threads and ctm's CPU workers = cores / ranks on this node
// (unless OPENBLAS_NUM_THREADS / CTM_NUM_THREADS say otherwise), so nothing oversubscribes the cores; and a
// malloc that keeps large activations in the heap.
void configure_cpu_threads(int ranks_on_node);

}  // namespace ctm::tasks
