// --device / --gpus -> this rank's device: the GPU list, one GPU per local rank, and the errors.
#include <gtest/gtest.h>

#include "ctm/core/error.hpp"
#include "ctm/dist/device.hpp"

namespace ctm::dist {
namespace {

TEST(Device, GpuList) {
  EXPECT_EQ(parse_gpu_list("", 3), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(parse_gpu_list("", 0), std::vector<int>{});
  EXPECT_EQ(parse_gpu_list("2,0", 3), (std::vector<int>{2, 0}));
  for (const char* bad : {"a", "0,,1", "0,", ",1", "-1", "1 ", "3", "1,1"})
    EXPECT_THROW(parse_gpu_list(bad, 3), UsageError) << bad;
  try {
    parse_gpu_list("0,5", 4);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("GPU 5 is not visible (4 visible)"), std::string::npos) << e.what();
  }
}

TEST(Device, OneGpuPerLocalRank) {
  const std::vector<int> gpus = {2, 0, 3};
  EXPECT_EQ(gpu_for_local_rank(gpus, 0, 3), 2);
  EXPECT_EQ(gpu_for_local_rank(gpus, 1, 3), 0);
  EXPECT_EQ(gpu_for_local_rank(gpus, 2, 3), 3);
  EXPECT_EQ(gpu_for_local_rank(gpus, 1, 2), 0);
  try {
    gpu_for_local_rank(gpus, 0, 4);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("4 ranks on this node but 3 GPUs"), std::string::npos) << e.what();
  }
}

TEST(Device, RankDevice) {
  auto comm = make_local_comm();
  EXPECT_EQ(rank_device("cpu", "", *comm), torch::Device(torch::kCPU));
  EXPECT_THROW(rank_device("cpu", "0", *comm), UsageError);
  EXPECT_THROW(rank_device("tpu", "", *comm), Error);
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(rank_device("cuda", "", *comm), Error);
    EXPECT_THROW(rank_device("cuda:0", "", *comm), Error);
  } else {
    EXPECT_EQ(rank_device("cuda", "", *comm), torch::Device(torch::kCUDA, 0));
    EXPECT_THROW(rank_device("cuda:0", "0", *comm), UsageError);
  }
}

TEST(Device, CpuTensorsUseTheWorldItself) {
  auto world = make_local_comm();
  auto c = device_comm(*world, torch::kCPU);
  EXPECT_EQ(c.get(), world.get());
}

}  // namespace
}  // namespace ctm::dist
