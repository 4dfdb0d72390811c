// The three real tokenizers against 1206 reference encodings from an independent implementation of Hugging
// Face tokenizers (shared/reference/tokenizer_vectors.jsonl): id for id, and decode(encode(x)) == x (NFC(x)
// for Qwen).
#include <gtest/gtest.h>

#include <utf8proc.h>

#include <cstdlib>

#include "fixtures.hpp"

namespace ctm::text {
namespace {

using namespace testing_fixtures;

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  std::string r(reinterpret_cast<char*>(out));
  std::free(out);
  return r;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

TEST(ReferenceVectors, MatchIdForIdAndRoundTrip) {
  const auto& vectors = reference_vectors();
  ASSERT_EQ(vectors.size(), 1206u);
  std::map<std::string, int> count, mismatches;
  for (const Vector& v : vectors) {
    const Tokenizer& tok = tokenizer(v.tokenizer);
    const std::vector<int32_t> ids = tok.encode(v.text, false);
    ++count[v.tokenizer];
    if (ids != v.ids) {
      if (++mismatches[v.tokenizer] <= 3) {
        ADD_FAILURE() << v.tokenizer << ": " << v.text << "\n got      " << show(ids) << "\n expected "
                      << show(v.ids);
      }
    }
  }
  for (const char* name : kNames) {
    EXPECT_EQ(count[name], 402) << name;
    EXPECT_EQ(mismatches[name], 0) << name;
  }
  // (One test rather than three: under ASan, loading the three tokenizers costs seconds per test process.)

  // decode(encode(x)) == x, after NFC for Qwen (its normalizer).
  for (const Vector& v : reference_vectors()) {
    const Tokenizer& tok = tokenizer(v.tokenizer);
    const std::string expected = v.tokenizer == "qwen3" ? nfc(v.text) : v.text;
    ASSERT_EQ(tok.decode(v.ids), expected) << v.tokenizer;
  }

  // The incremental decoder concatenates to decode().
  for (const Vector& v : reference_vectors()) {
    const Tokenizer& tok = tokenizer(v.tokenizer);
    IncrementalDecoder dec(tok);
    std::string joined;
    for (int32_t id : v.ids) joined += dec.push(id);
    joined += dec.flush();
    ASSERT_EQ(joined, tok.decode(v.ids));
  }
}

}  // namespace
}  // namespace ctm::text
