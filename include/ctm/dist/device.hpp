// Which device a rank computes on, and the communicator for tensors there. Under mpirun with several GPUs per
// node, rank r takes GPU local_rank(r) of --gpus (or of every visible GPU), so 8 ranks on a node of 8 GPUs
// use one each.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "ctm/dist/comm.hpp"

namespace ctm::dist {

// --gpus "0,1,3" -> {0, 1, 3}; empty -> 0 .. visible - 1. ctm::UsageError naming a malformed, repeated or
// invisible id.
std::vector<int> parse_gpu_list(const std::string& gpus, int visible);

// The GPU of the local_rank-th rank of a node (of local_size); ctm::UsageError when the node runs more ranks
// than there are GPUs in the list.
int gpu_for_local_rank(const std::vector<int>& gpus, int local_rank, int local_size);

// This rank's device from --device and --gpus: "cpu" (no --gpus), "cuda" (GPU local_rank of --gpus, or of
// every visible GPU), "cuda:N" (one rank per node, no --gpus). ctm::Error when CUDA is unavailable.
torch::Device rank_device(const std::string& device, const std::string& gpus, const Comm& comm);

#ifdef CTM_WITH_NCCL
// NCCL among the ranks of `host`, this rank on GPU cuda_device: the unique id is made on rank 0 and
// broadcast over `host` (MPI), which also serves strings, scalars and CPU tensors. `host` must outlive it.
std::unique_ptr<Comm> make_nccl_comm(Comm& host, int cuda_device);
#endif

// The communicator for tensors on `device`: `world` itself for the CPU; for CUDA, NCCL when built with
// CTM_WITH_NCCL, else `world` (MPI through host memory, with a warning when there are several ranks).
// `world` must outlive the result.
std::shared_ptr<Comm> device_comm(Comm& world, torch::Device device);

}  // namespace ctm::dist
