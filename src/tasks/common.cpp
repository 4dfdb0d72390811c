#include "ctm/tasks/common.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"
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

std::string output_path(const CommonOptions& common, const std::string& sub) {
  return (fs::path(common.output_dir) / sub).string();
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
