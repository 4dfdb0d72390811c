// Loading must not hold a second full copy of the weights: the peak resident memory added by load_model is
// the model plus about one tensor, not the file plus the model. Measured with VmHWM after resetting it
// through /proc/self/clear_refs. Also prints the fixture's forward time (not asserted).
#include <gtest/gtest.h>
#include <malloc.h>
#include <torch/torch.h>

#include <chrono>

#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "model_test_util.hpp"

namespace ctm::model {
namespace {

TEST(LoadMemory, PeakIsModelPlusOneTensor) {
  Json j = {{"architectures", {"LlamaForCausalLM"}},
            {"hidden_size", 512},
            {"intermediate_size", 1024},
            {"num_hidden_layers", 4},
            {"num_attention_heads", 8},
            {"num_key_value_heads", 8},
            {"vocab_size", 4000},
            {"rms_norm_eps", 1e-5}};
  const auto config = ModelConfig::from_json(j, "memory test config");
  const std::string dir = test::fresh_dir("big");
  {
    auto model = init_model(config, 1, torch::kCPU, torch::kFloat32);
    save_model(*model, dir);
  }
  malloc_trim(0);
  const int64_t file_bytes = static_cast<int64_t>(std::filesystem::file_size(dir + "/model.safetensors"));
  int64_t largest = 0;
  const io::SafetensorsFile file(dir + "/model.safetensors");
  for (const auto& t : file.tensors()) largest = std::max<int64_t>(largest, static_cast<int64_t>(t.nbytes()));

  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    malloc_trim(0);
    if (!test::reset_peak_rss()) GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
    const int64_t before = test::proc_status_bytes("VmRSS");
    ASSERT_LT(test::proc_status_bytes("VmHWM") - before, 1 << 20);  // the reset worked
    auto model = load_model(dir, torch::kCPU, dtype);
    const int64_t peak = test::proc_status_bytes("VmHWM") - before;
    const int64_t model_bytes = file_bytes / (dtype == torch::kFloat32 ? 1 : 2);
    std::printf(
        "load_model %s: file %.1f MB, model %.1f MB, largest tensor %.1f MB, peak RSS added %.1f MB "
        "(%.2f x file)\n",
        torch_dtype_name(dtype).c_str(), file_bytes / 1e6, model_bytes / 1e6, largest / 1e6, peak / 1e6,
        static_cast<double>(peak) / file_bytes);
    // Model + the tensor being copied + slack (allocator, page rounding): well under file + model.
    EXPECT_LT(peak, model_bytes + largest + file_bytes / 10);
  }
}

TEST(LoadMemory, FixtureForwardTime) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  torch::NoGradGuard no_grad;
  const auto batch = pad_batch(
      {{256, 130, 3, 195, 76, 176, 22, 49, 180, 133, 141, 217, 162, 203, 118, 74, 128}}, torch::kCPU);
  CausalAttention attn;
  model->forward(batch.ids_BT, batch.positions_BT, attn);  // warm-up
  const int reps = 50;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) {
    CausalAttention a;
    model->forward(batch.ids_BT, batch.positions_BT, a);
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
  std::printf("fixture forward (1 x 17 tokens, 3 layers, d 64, CPU float32): %.3f ms\n", ms);
  EXPECT_GT(ms, 0.0);
}

}  // namespace
}  // namespace ctm::model
