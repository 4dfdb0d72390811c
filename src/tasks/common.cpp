#include "ctm/tasks/common.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/dist/device.hpp"

namespace ctm::tasks {
namespace fs = std::filesystem;

std::string data_dir() {
  if (const char* env = std::getenv("CTM_DATA_DIR"); env && *env) return env;
  return std::string(CTM_SOURCE_DIR) + "/data";
}

std::string resolve_model_path(const CommonOptions& common) {
  if (!common.model_path.empty()) {
    if (!fs::is_directory(common.model_path))
      throw Error(str("--model_path '", common.model_path, "' is not a folder"));
    return common.model_path;
  }
  if (common.model_name.empty()) throw UsageError("give --model_path or --model_name");
  std::string tried;
  if (const char* env = std::getenv("CTM_MODELS"); env && *env) {
    const std::string p = std::string(env) + "/" + common.model_name;
    if (fs::is_directory(p)) return p;
    tried = p + ", ";
  }
  const std::string embedded = data_dir() + "/models/" + common.model_name;
  if (fs::is_directory(embedded)) return embedded;
  tried += embedded;
  throw Error(
      str("model '", common.model_name, "' not found (tried ", tried,
          "); give --model_path DIR or set CTM_MODELS to the folder holding Hugging Face model folders"));
}

torch::Device rank_device(const CommonOptions& common, const dist::Comm& comm) {
  return dist::rank_device(common.device, common.gpus, comm);
}

std::string model_label(const CommonOptions& common, const std::string& model_dir) {
  if (!common.model_name.empty()) return common.model_name;
  fs::path dir(model_dir);
  if (dir.filename().empty()) dir = dir.parent_path();
  return dir.filename().string();
}

std::string output_path(const CommonOptions& common, const std::string& sub) {
  return (fs::path(common.output_dir) / sub).string();
}

std::string with_suffix_replaced(const std::string& path, const std::string& old, const std::string& suffix) {
  const bool has = path.size() >= old.size() && path.compare(path.size() - old.size(), old.size(), old) == 0;
  return (has ? path.substr(0, path.size() - old.size()) : path) + suffix;
}

int64_t int_option(const TaskContext& ctx, const char* name, int64_t lo, int64_t hi) {
  const int64_t v = ctx.vm[name].as<int64_t>();
  if (v < lo || v > hi) throw UsageError(str("--", name, " must be in [", lo, ", ", hi, "] (got ", v, ")"));
  return v;
}

double real_option(const TaskContext& ctx, const char* name, double lo, double hi) {
  const double v = ctx.vm[name].as<double>();
  if (!(v >= lo && v <= hi))
    throw UsageError(str("--", name, " must be in [", lo, ", ", hi, "] (got ", v, ")"));
  return v;
}

bool option_given(const TaskContext& ctx, const char* name) {
  return ctx.vm.count(name) > 0 && !ctx.vm[name].defaulted();
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string run_tag(double t, int64_t n, int64_t default_n, uint64_t seed) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "T%.2f", t);
  std::string tag = buf;
  if (n != default_n) tag += str(".n", n);
  if (seed != 42) tag += str(".seed", seed);
  return tag;
}

std::string startup_tag(const TaskContext& ctx, const std::string& model) {
  const CommonOptions& c = ctx.common;
  const double t =
      option_given(ctx, "t") ? c.t : data::default_temperature(model, data::parse_dataset(c.dataset_name));
  const int64_t n = option_given(ctx, "sampling_n") ? c.sampling_n : kPaperSamples;
  return run_tag(t, n, kPaperSamples, c.seed);
}

StartupDataPaths startup_data_paths(const CommonOptions& common, const std::string& model,
                                    const std::string& tag) {
  const std::string stem = output_path(common, "data/" + model + "/" + common.dataset_name);
  return {stem + ".samples." + tag + ".jsonl", stem + ".samples." + tag + ".config.json",
          stem + ".sft." + tag + ".json", stem + ".dpo_top_k1." + tag + ".json"};
}

EvaluationPaths evaluation_paths(const CommonOptions& c, const std::string& model_dir, int64_t n) {
  const std::string model = model_label(c, model_dir);
  std::string variant = "base";
  if (!c.lora_path.empty()) {
    fs::path lora(c.lora_path);
    if (lora.filename().empty()) lora = lora.parent_path();
    variant = "lora-" + lora.filename().string();
  }
  const std::string dir = output_path(c, "output/" + model + "/" + c.dataset_name + "/" + variant);
  std::string tag = str(c.t);
  if (n != 1) tag += str(".n", n);
  if (c.seed != 42) tag += str(".seed", c.seed);
  return {dir + "/result_" + tag + ".jsonl", dir + "/summary_" + tag + ".json"};
}

void configure_cpu_threads(int ranks_on_node) {
  // glibc serves blocks above its mmap threshold (at most 32 MiB, however it adapts) with fresh mmaps, so
  // every large activation (attention scores, logits) was zero-filled page by page and unmapped again: 15-20%
  // of a pretrain step. Keep them in the heap and keep the heap: freed memory is reused, not returned.
  ::mallopt(M_MMAP_THRESHOLD, 512 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  torch::set_num_threads(1);  // OpenBLAS and ctm's workers own the cores; torch's would oversubscribe them
  // Each rank's share of the node's cores, for OpenBLAS (unless OPENBLAS_NUM_THREADS says otherwise: it reads
  // it when it loads) and for ctm's own kernels (CTM_NUM_THREADS overrides).
  const long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  const int share = static_cast<int>(std::max(1L, cores / std::max(1, ranks_on_node)));
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    using SetThreads = void (*)(int);
    if (auto fn = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(share);
  }
  const char* own = std::getenv("CTM_NUM_THREADS");
  set_cpu_workers(own ? std::max(1, std::atoi(own)) : share);
}

}  // namespace ctm::tasks
