// Test helpers of the HDF5 tests: a scratch folder that tests remove, and error_of.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "ctm/core/error.hpp"

namespace ctm::test {

// A fresh folder under gtest's TempDir, removed on destruction.
struct ScratchDir {
  std::filesystem::path dir;
  explicit ScratchDir(const std::string& name)
      : dir(std::filesystem::path(testing::TempDir()) / ("ctm_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string path(const std::string& file) const { return (dir / file).string(); }
  size_t files() const {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
  }
};

// The ctm::Error message of fn (fails the test when fn does not throw one).
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ctm::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ctm::Error thrown";
  return "";
}

}  // namespace ctm::test
