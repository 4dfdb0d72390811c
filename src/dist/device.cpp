#include "ctm/dist/device.hpp"

#include <algorithm>
#include <sstream>

#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/model/loader.hpp"

namespace ctm::dist {

std::vector<int> parse_gpu_list(const std::string& gpus, int visible) {
  std::vector<int> out;
  if (gpus.empty()) {
    for (int i = 0; i < visible; ++i) out.push_back(i);
    return out;
  }
  std::stringstream in(gpus);
  std::string item;
  while (std::getline(in, item, ',')) {
    const bool digits = !item.empty() && std::all_of(item.begin(), item.end(), ::isdigit) && item.size() < 6;
    if (!digits) throw UsageError(str("--gpus '", gpus, "': '", item, "' is not a GPU id"));
    const int id = std::stoi(item);
    if (id >= visible)
      throw UsageError(str("--gpus '", gpus, "': GPU ", id, " is not visible (", visible, " visible)"));
    if (std::find(out.begin(), out.end(), id) != out.end())
      throw UsageError(str("--gpus '", gpus, "': GPU ", id, " is listed twice"));
    out.push_back(id);
  }
  if (out.empty() || gpus.back() == ',') throw UsageError(str("--gpus '", gpus, "': expected ids like 0,1"));
  return out;
}

int gpu_for_local_rank(const std::vector<int>& gpus, int local_rank, int local_size) {
  if (local_size > static_cast<int>(gpus.size()))
    throw UsageError(str(local_size, " ranks on this node but ", gpus.size(),
                         " GPUs to give them; start at most one rank per GPU (or list more with --gpus)"));
  return gpus.at(static_cast<size_t>(local_rank));
}

torch::Device rank_device(const std::string& device, const std::string& gpus, const Comm& comm) {
  if (device == "cpu") {
    if (!gpus.empty()) throw UsageError(str("--gpus ", gpus, " needs --device cuda"));
    return torch::Device(torch::kCPU);
  }
  const torch::Device parsed = model::parse_device(device);  // errors when CUDA is unavailable
  if (device != "cuda") {
    if (!gpus.empty()) throw UsageError(str("--gpus ", gpus, " goes with --device cuda, not ", device));
    if (comm.local_size() > 1)
      throw UsageError(str("--device ", device, " would put all ", comm.local_size(),
                           " ranks of this node on one GPU; use --device cuda (and --gpus)"));
    return parsed;
  }
  const auto list = parse_gpu_list(gpus, static_cast<int>(torch::cuda::device_count()));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(
                                         gpu_for_local_rank(list, comm.local_rank(), comm.local_size())));
}

std::shared_ptr<Comm> device_comm(Comm& world, torch::Device device) {
  if (device.is_cuda()) {
#ifdef CTM_WITH_NCCL
    return make_nccl_comm(world, device.index());
#else
    if (world.size() > 1)
      spdlog::warn(
          "built without NCCL (-DCTM_WITH_NCCL=ON): collectives on {} go through host memory and MPI",
          device.str());
#endif
  }
  return std::shared_ptr<Comm>(&world, [](Comm*) {});  // not owned
}

}  // namespace ctm::dist
