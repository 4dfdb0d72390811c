// Test helpers: the real tokenizers of tests/fixtures/text (xz-compressed), unpacked once per process into a
// fresh temporary folder and loaded once.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "ctm/io/json.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::text::testing_fixtures {

inline std::string temp_root() {
  static const std::string root = [] {
    // Shared by the test processes (ctest runs each test alone); files appear by atomic rename.
    const std::string dir = ::testing::TempDir() + "/ctm_text_fixtures";
    std::filesystem::create_directories(dir);
    return dir;
  }();
  return root;
}

// Decompresses fixtures/text/<rel>.xz to <temp>/<tag>/<file name>, where tag names the fixture and its
// compressed size (so a changed fixture is unpacked afresh); returns the unpacked path.
inline std::string unpack_xz(const std::string& rel, const std::string& tag) {
  const std::string src = std::string(CTM_TEST_FIXTURES) + "/text/" + rel + ".xz";
  const std::string dir = temp_root() + "/" + tag + "_" + std::to_string(std::filesystem::file_size(src));
  const std::string dst = dir + "/" + std::filesystem::path(rel).filename().string();
  if (!std::filesystem::exists(dst)) {
    std::filesystem::create_directories(dir);
    const std::string part = dst + ".part" + std::to_string(::getpid());
    const std::string cmd = "xz -dc '" + src + "' > '" + part + "' && mv -f '" + part + "' '" + dst + "'";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot unpack " + src);
  }
  return dst;
}

// A folder with tokenizer.json and tokenizer_config.json of one of llama3, qwen3, deepseek_v3.
inline std::string tokenizer_dir(const std::string& name) {
  const std::string dir =
      std::filesystem::path(unpack_xz(name + "/tokenizer.json", name)).parent_path().string();
  const std::string cfg = dir + "/tokenizer_config.json";
  if (!std::filesystem::exists(cfg)) {
    const std::string part = cfg + ".part" + std::to_string(::getpid());
    std::filesystem::copy_file(std::string(CTM_TEST_FIXTURES) + "/text/" + name + "/tokenizer_config.json",
                               part, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(part, cfg);
  }
  return dir;
}

inline const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end()) {
    it = loaded.emplace(name, std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_dir(name)))).first;
  }
  return *it->second;
}

struct Vector {
  std::string tokenizer, text;
  std::vector<int32_t> ids;
};

inline const std::vector<Vector>& reference_vectors() {
  static const std::vector<Vector> vectors = [] {
    std::vector<Vector> out;
    for (const Json& j : read_jsonl(unpack_xz("tokenizer_vectors.jsonl", "vectors"))) {
      out.push_back(Vector{j.at("tokenizer").get<std::string>(), j.at("text").get<std::string>(),
                           j.at("ids").get<std::vector<int32_t>>()});
    }
    return out;
  }();
  return vectors;
}

inline const char* const kNames[] = {"llama3", "qwen3", "deepseek_v3"};

}  // namespace ctm::text::testing_fixtures
