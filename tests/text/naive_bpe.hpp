// An independent, deliberately naive BPE for the tests: the word's byte-level characters, then repeatedly the
// adjacent pair with the lowest merge rank (leftmost on ties) is merged, with ranks in a std::map of strings.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ctm/io/json.hpp"

namespace ctm::text::testing_fixtures {

// GPT-2's byte -> character table, written out independently of the library.
inline std::string byte_level_chars(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) {
    unsigned cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))) {
      unsigned n = 0;
      for (unsigned x = 0; x < b; ++x)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174))) ++n;
      cp = 256 + n;
    }
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

class NaiveBpe {
 public:
  template <class J>
  explicit NaiveBpe(const J& model) {
    const auto& merges = model.at("merges");
    for (size_t i = 0; i < merges.size(); ++i) {
      std::string a, b;
      if (merges[i].is_string()) {
        const std::string s = merges[i].template get<std::string>();
        a = s.substr(0, s.find(' '));
        b = s.substr(s.find(' ') + 1);
      } else {
        a = merges[i][0].template get<std::string>();
        b = merges[i][1].template get<std::string>();
      }
      ranks_.emplace(std::make_pair(a, b), i);
    }
  }

  // The tokens (as written in the vocabulary) of one pre-token given as raw bytes.
  std::vector<std::string> tokens(const std::string& word_bytes) const {
    std::vector<std::string> parts;
    for (unsigned char b : word_bytes)
      parts.push_back(byte_level_chars(std::string(1, static_cast<char>(b))));
    while (parts.size() > 1) {
      size_t best = SIZE_MAX, at = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        auto it = ranks_.find({parts[i], parts[i + 1]});
        if (it != ranks_.end() && it->second < best) best = it->second, at = i;
      }
      if (best == SIZE_MAX) break;
      parts[at] += parts[at + 1];
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
    return parts;
  }

 private:
  std::map<std::pair<std::string, std::string>, size_t> ranks_;
};

}  // namespace ctm::text::testing_fixtures
