// Helpers shared by the model tests.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>
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

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
inline int64_t proc_status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream ss(line.substr(field.size() + 1));
      int64_t kb = 0;
      ss >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

// Resets VmHWM to the current resident set (false where /proc/self/clear_refs is not writable).
inline bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.close();
  return static_cast<bool>(out);
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace ctm::model::test
