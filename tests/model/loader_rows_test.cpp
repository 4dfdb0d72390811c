// Row ranges of stored tensors (what a sharded model loads): every range equals those rows of the whole
// tensor, in the stored dtype and converted; ranges that do not fit are errors naming the tensor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ctm/core/error.hpp"
#include "ctm/io/safetensors.hpp"
#include "ctm/model/loader.hpp"
#include "model_test_util.hpp"

namespace ctm::model {
namespace {

TEST(LoaderRows, EveryRangeEqualsThoseRowsOfTheWholeTensor) {
  const auto dir = test::tiny_random_dir();
  const auto whole = load_model(dir, torch::kCPU, torch::kFloat32);
  io::SafetensorsSet weights(dir);
  int64_t checked = 0;
  for (const auto& [name, full] : whole->named_parameters()) {
    const int64_t rows = full.size(0);
    for (const auto& [begin, count] : std::vector<std::pair<int64_t, int64_t>>{
             {0, rows}, {0, 1}, {rows - 1, 1}, {rows / 3, rows / 3 + 1}, {rows / 2, 0}}) {
      auto sizes = full.sizes().vec();
      sizes[0] = count;
      auto part = torch::full(sizes, -7.0f);
      copy_rows_from(weights.file_of(name), weights.info(name), begin, part);
      EXPECT_TRUE(torch::equal(part, full.narrow(0, begin, count)))
          << name << " rows " << begin << "+" << count;
      auto bf16 = torch::zeros(sizes, torch::kBFloat16);
      copy_rows_from(weights.file_of(name), weights.info(name), begin, bf16);
      EXPECT_TRUE(torch::equal(bf16, full.narrow(0, begin, count).to(torch::kBFloat16))) << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 5 * static_cast<int64_t>(whole->named_parameters().size()));
}

TEST(LoaderRows, RangesThatDoNotFitAreErrors) {
  const auto dir = test::tiny_random_dir();
  io::SafetensorsSet weights(dir);
  const std::string name = "model.layers.0.mlp.up_proj.weight";  // [176, 64]
  const auto& file = weights.file_of(name);
  const auto& info = weights.info(name);
  auto ok = torch::zeros({4, 64});
  auto past_end = torch::zeros({4, 64}), wide = torch::zeros({4, 65}), flat = torch::zeros({256});
  copy_rows_from(file, info, 172, ok);
  EXPECT_THROW(copy_rows_from(file, info, 173, past_end), Error);
  EXPECT_THROW(copy_rows_from(file, info, -1, past_end), Error);
  EXPECT_THROW(copy_rows_from(file, info, 0, wide), Error);
  try {
    copy_rows_from(file, info, 0, flat);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ctm::model
