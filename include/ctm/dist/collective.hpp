// The trainer's data-parallel interface (train::Collective) over a dist::Comm: gradients and loss statistics
// summed by the communicator's tensor all-reduce (MPI on CPU, NCCL on CUDA).
#pragma once

#include <torch/torch.h>

#include "ctm/dist/comm.hpp"
#include "ctm/train/trainer.hpp"

namespace ctm::dist {

class CommCollective : public train::Collective {
 public:
  explicit CommCollective(Comm& comm) : comm_(comm) {}
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  void all_reduce_sum(torch::Tensor& t) override { comm_.allreduce_sum(t); }

 private:
  Comm& comm_;
};

}  // namespace ctm::dist
