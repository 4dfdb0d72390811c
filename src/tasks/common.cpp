#include "ctm/tasks/common.hpp"

#include <dlfcn.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "ctm/core/error.hpp"

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

std::string output_path(const CommonOptions& common, const std::string& sub) {
  return (fs::path(common.output_dir) / sub).string();
}

void configure_cpu_threads(int ranks_on_node) {
  torch::set_num_threads(1);
  // OpenBLAS reads OPENBLAS_NUM_THREADS when it loads; without it, give each rank its share of the cores.
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    const long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
    const int share = static_cast<int>(std::max(1L, cores / std::max(1, ranks_on_node)));
    using SetThreads = void (*)(int);
    if (auto fn = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(share);
  }
}

}  // namespace ctm::tasks
