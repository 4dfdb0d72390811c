// Helpers shared by the tasks: where data and models live, and the per-rank thread set-up.
#pragma once

#include <torch/torch.h>

#include <string>

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

// The folder a task writes under: <output_dir>/<sub>.
std::string output_path(const CommonOptions& common, const std::string& sub);

// One torch intra-op thread per rank; OpenBLAS threads and ctm's CPU workers = cores / ranks on this node
// (unless OPENBLAS_NUM_THREADS / CTM_NUM_THREADS say otherwise), so nothing oversubscribes the cores; and a
// malloc that keeps large activations in the heap.
void configure_cpu_threads(int ranks_on_node);

}  // namespace ctm::tasks
