// The single-rank backend, and the argument checks every backend shares.
#include <torch/torch.h>

#include "ctm/core/error.hpp"
#include "ctm/dist/comm.hpp"

namespace ctm::dist {

void check_collective(const char* what, const at::Tensor& in, const at::Tensor& out, int64_t in_blocks,
                      int64_t out_blocks) {
  CTM_CHECK(in.defined() && out.defined(), what, ": undefined tensor");
  CTM_CHECK(in.is_contiguous() && out.is_contiguous(), what, ": tensors must be contiguous");
  CTM_CHECK(in.scalar_type() == out.scalar_type(), what, ": input is ", in.scalar_type(), ", output ",
            out.scalar_type());
  CTM_CHECK(in.device() == out.device(), what, ": input on ", in.device(), ", output on ", out.device());
  CTM_CHECK(in.numel() * out_blocks == out.numel() * in_blocks, what, ": ", in.numel(), " elements in, ",
            out.numel(), " out; expected a ratio of ", in_blocks, " : ", out_blocks);
}

namespace {

class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  void barrier() override {}
  std::vector<std::string> allgather(const std::string& mine) override { return {mine}; }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    CTM_CHECK(root == 0, "gather to rank ", root, " of a single-rank communicator");
    return {mine};
  }
  std::string broadcast(const std::string& value, int root) override {
    CTM_CHECK(root == 0, "broadcast from rank ", root, " of a single-rank communicator");
    return value;
  }
  void allreduce_sum(double*, int64_t) override {}
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(int64_t*, int64_t) override {}
  bool all(bool flag) override { return flag; }
  bool any(bool flag) override { return flag; }

  void allreduce_sum(at::Tensor& t) override { check_collective("allreduce_sum", t, t, 1, 1); }
  void allgather(const at::Tensor& in, at::Tensor& out) override {
    check_collective("allgather", in, out, 1, 1);
    out.view(-1).copy_(in.view(-1));
  }
  void reduce_scatter_sum(const at::Tensor& in, at::Tensor& out) override {
    check_collective("reduce_scatter_sum", in, out, 1, 1);
    out.view(-1).copy_(in.view(-1));
  }
  void broadcast(at::Tensor& t, int root) override {
    CTM_CHECK(root == 0, "broadcast from rank ", root, " of a single-rank communicator");
    check_collective("broadcast", t, t, 1, 1);
  }
};

}  // namespace

std::unique_ptr<Comm> make_local_comm() {
  return std::make_unique<LocalComm>();
}

}  // namespace ctm::dist
