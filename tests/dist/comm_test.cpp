// The local (single-rank) backend and, in a build with NCCL and a GPU, the NCCL backend on one device.
#include <gtest/gtest.h>

#include "comm_checks.hpp"
#include "ctm/dist/device.hpp"

namespace ctm::dist {
namespace {

TEST(LocalComm, TensorCollectives) {
  auto c = make_local_comm();
  EXPECT_EQ(c->size(), 1);
  test::check_tensor_collectives(*c, torch::kCPU);
}

TEST(LocalComm, StringsAndScalars) {
  auto c = make_local_comm();
  EXPECT_EQ(c->allgather("x"), std::vector<std::string>{"x"});
  EXPECT_EQ(c->gather("y", 0), std::vector<std::string>{"y"});
  EXPECT_EQ(c->broadcast("z", 0), "z");
  EXPECT_THROW(c->broadcast("z", 1), Error);
  double d = 2.5;
  c->allreduce_sum(&d, 1);
  EXPECT_EQ(d, 2.5);
  EXPECT_TRUE(c->all(true));
  EXPECT_FALSE(c->any(false));
}

#ifdef CTM_WITH_NCCL
// A single-rank NCCL communicator on GPU 0 (tools/gpu/check.sh runs it on the GPU machine).
TEST(Nccl, OneRankCollectivesOnOneDevice) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  auto host = make_local_comm();
  auto nccl = make_nccl_comm(*host, 0);
  test::check_tensor_collectives(*nccl, torch::Device(torch::kCUDA, 0));
  // CPU tensors go to the host communicator.
  test::check_tensor_collectives(*nccl, torch::kCPU);
  // A tensor on another device than the communicator's is refused.
  if (torch::cuda::device_count() > 1) {
    auto other = torch::zeros({4}, torch::Device(torch::kCUDA, 1));
    EXPECT_THROW(nccl->allreduce_sum(other), Error);
  }
}
#endif

}  // namespace
}  // namespace ctm::dist
