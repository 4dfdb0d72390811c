// Helpers shared by the model tests.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "ctm/core/atomic_file.hpp"

namespace ctm::model::test {

inline std::string tiny_random_dir() {
  return std::string(CTM_TEST_FIXTURES) + "/model/llama3-tiny-random";
}

// A fresh, empty folder under the test temp dir.
inline std::string fresh_dir(const std::string& name) {
  const auto info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "ctm_model_test" /
                              (std::string(info->test_suite_name()) + "." + info->name() + "." + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace ctm::model::test
