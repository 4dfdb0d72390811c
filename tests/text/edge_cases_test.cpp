// Edge cases on the three real tokenizers: empty text, whitespace runs, \r\n, digit runs, contractions, emoji
// and ZWJ sequences, CJK, special tokens, invalid UTF-8, very long inputs, long words against a naive BPE,
// threads.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "fixtures.hpp"
#include "naive_bpe.hpp"

namespace ctm::text {
namespace {

using namespace testing_fixtures;

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// Byte offsets where one token ends and the next begins.
std::set<size_t> token_boundaries(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::set<size_t> out;
  size_t at = 0;
  for (int32_t id : ids) {
    at += tok.decode({id}).size();
    out.insert(at);
  }
  return out;
}

// Every pre-token boundary (computed by hand from the regex) must be a token boundary.
void expect_splits(const std::string& name, const std::string& text, std::vector<size_t> cuts) {
  const Tokenizer& tok = tokenizer(name);
  const auto ids = tok.encode(text, false);
  const auto b = token_boundaries(tok, ids);
  for (size_t c : cuts)
    EXPECT_TRUE(b.count(c)) << name << ": no token boundary at byte " << c << " of " << text;
  EXPECT_EQ(tok.decode(ids), text) << name;
}

TEST(EdgeCases, EmptyTextAndSpecialTokens) {
  for (const char* name : kNames) EXPECT_TRUE(tokenizer(name).encode("", false).empty()) << name;
  // deepseek_v3 is a LlamaTokenizerFast with add_bos_token: BOS only; the llama3 file's post-processor is
  // ByteLevel (adds nothing) and Qwen has no BOS.
  EXPECT_EQ(tokenizer("deepseek_v3").encode("", true), std::vector<int32_t>{0});
  EXPECT_TRUE(tokenizer("llama3").encode("", true).empty());
  EXPECT_TRUE(tokenizer("qwen3").encode("", true).empty());
  // (Several checks per test: under ASan, loading the three tokenizers costs seconds per test process.)

  // Special tokens.
  EXPECT_EQ(tokenizer("llama3").bos_id(), 128000);
  EXPECT_EQ(tokenizer("llama3").eos_id(), 128001);
  EXPECT_EQ(tokenizer("deepseek_v3").bos_id(), 0);
  EXPECT_EQ(tokenizer("deepseek_v3").eos_id(), 1);
  EXPECT_EQ(tokenizer("qwen3").bos_id(), std::nullopt);
  EXPECT_EQ(tokenizer("qwen3").eos_id(), 151645);
  EXPECT_EQ(tokenizer("llama3").vocab_size(), 128256);
  EXPECT_EQ(tokenizer("qwen3").encode("<|im_start|>user\nhi<|im_end|>", false).front(), 151644);
  EXPECT_EQ(tokenizer("qwen3").encode("<|im_start|>user\nhi<|im_end|>", false).back(), 151645);
  EXPECT_EQ(tokenizer("llama3").encode("<|begin_of_text|>Hello", false).front(), 128000);
  const auto ds = tokenizer("deepseek_v3").encode("Hi", true);
  EXPECT_EQ(ds.front(), 0);
  EXPECT_EQ(tokenizer("deepseek_v3").decode(ds), "<｜begin▁of▁sentence｜>Hi");
  EXPECT_EQ(tokenizer("llama3").token_to_id("Ġthe"), 279);
  EXPECT_EQ(tokenizer("llama3").id_to_token(279), "Ġthe");
  EXPECT_EQ(tokenizer("llama3").token_to_id("<|end_of_text|>"), 128001);
  EXPECT_EQ(tokenizer("llama3").token_to_id("no such token ever"), std::nullopt);
}

TEST(EdgeCases, PreTokenBoundaries) {
  // Whitespace runs and line ends.
  for (const char* name : kNames) {
    expect_splits(name, "a    b", {1, 4});  // \s+(?!\S) keeps the last space for " b"
    expect_splits(name, "   ", {});
    expect_splits(name, "a\r\nb", {1, 3});
    expect_splits(name, "x \n\n  y", {1, 4, 5});  // "x", " \n\n" (\s*[\r\n]+), " ", " y"
    expect_splits(name, "\t\tend  \n", {1, 5});   // "\t", "\tend", "  \n"
  }
}

TEST(EdgeCases, DigitRuns) {
  expect_splits("llama3", "1234567", {3, 6});
  expect_splits("deepseek_v3", "1234567", {3, 6});
  expect_splits("qwen3", "1234567", {1, 2, 3, 4, 5, 6});
  const auto q = tokenizer("qwen3").encode("2024", false);
  EXPECT_EQ(q.size(), 4u);

  // Contractions: Llama-3 and Qwen match 's 't 're 've 'm 'll 'd case-insensitively as their own pre-tokens.
  for (const char* name : {"llama3", "qwen3"}) {
    expect_splits(name, "don't", {3});
    expect_splits(name, "WE'LL", {2});
    expect_splits(name, "she'd've", {3, 5});
  }
  expect_splits("deepseek_v3", "don't", {3});  // "'t": punctuation + ASCII letters
}

TEST(EdgeCases, EmojiZwjAndCjk) {
  const std::string family = "👨‍👩‍👧‍👦 family 🏳️‍🌈!";
  const std::string cjk = "東京は日本の首都です。漢字とカタカナ";
  for (const char* name : kNames) {
    const Tokenizer& tok = tokenizer(name);
    for (const std::string& text : {family, cjk, std::string("mixed 中文 and English, ünïcödé")}) {
      const auto ids = tok.encode(text, false);
      EXPECT_EQ(tok.decode(ids), text) << name;
      IncrementalDecoder dec(tok);
      std::string joined;
      for (int32_t id : ids) {
        const std::string piece = dec.push(id);
        EXPECT_TRUE(valid_utf8(piece)) << name << ": the incremental decoder split a character";
        joined += piece;
      }
      joined += dec.flush();
      EXPECT_EQ(joined, text) << name;
    }
  }
  // DeepSeek isolates runs of CJK and kana: "東京は日本の首都です" then "。".
  expect_splits("deepseek_v3", cjk, {30, 33});
}

TEST(EdgeCases, InvalidUtf8IsAClearError) {
  const std::vector<std::string> bad = {"abc\xff", "\xe6\x9d", "x\xc0\xaf", "\xed\xa0\x80", "ok\x80"};
  for (const char* name : kNames) {
    for (const std::string& s : bad) {
      try {
        tokenizer(name).encode(s, false);
        ADD_FAILURE() << name << ": no error for invalid UTF-8";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
      }
    }
  }
  try {
    tokenizer("llama3").encode("abc\xff", false);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte 3"), std::string::npos) << e.what();
  }
}

TEST(EdgeCases, IncompleteCharactersDecodeAsBytes) {
  const Tokenizer& tok = tokenizer("llama3");
  const std::string smile = "😀";
  std::vector<int32_t> bytes;  // the four single-byte tokens of U+1F600
  for (char b : smile) bytes.push_back(*tok.token_to_id(byte_level_chars(std::string(1, b))));
  EXPECT_EQ(tok.decode({bytes[0]}), smile.substr(0, 1));
  EXPECT_EQ(tok.decode(bytes), smile);
  IncrementalDecoder dec(tok);
  EXPECT_EQ(dec.push(bytes[0]), "");
  EXPECT_EQ(dec.push(bytes[1]), "");
  EXPECT_EQ(dec.push(bytes[2]), "");
  EXPECT_EQ(dec.push(bytes[3]), smile);
  EXPECT_EQ(dec.push(bytes[0]), "");
  EXPECT_EQ(dec.flush(), smile.substr(0, 1));
  EXPECT_EQ(utf8_complete_prefix("ab\xf0\x9f"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xf0\x9f\x98\x80"), 6u);
  EXPECT_EQ(utf8_complete_prefix("ab\x80"), 3u);  // a stray continuation byte cannot be completed: released
}

TEST(EdgeCases, VeryLongInputs) {
  for (const char* name : kNames) {
    const Tokenizer& tok = tokenizer(name);
    const std::string spaces(20000, ' ');
    const std::string digits(20000, '7');
    const std::string word(5000, 'z');
    for (const std::string& s : {spaces, digits, word, spaces + "x" + digits}) {
      EXPECT_EQ(tok.decode(tok.encode(s, false)), s) << name;
    }
  }
}

TEST(EdgeCases, LongWordsMatchANaiveBpe) {
  // Qwen's pre-tokenizer keeps a run of letters in one piece; words of every length exercise the scan and the
  // heap merge paths and the word-cache bypass (> 256 bytes).
  const nlohmann::json j = nlohmann::json::parse(read_file(tokenizer_dir("qwen3") + "/tokenizer.json"));
  const NaiveBpe naive(j.at("model"));
  const Tokenizer& tok = tokenizer("qwen3");
  uint64_t state = 7;
  for (size_t len : {1, 2, 3, 7, 20, 47, 48, 49, 50, 64, 100, 257, 400}) {
    for (int rep = 0; rep < 3; ++rep) {
      std::string w;
      for (size_t i = 0; i < len; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        w.push_back("etaoinshrdlucmfwyp"[(state >> 33) % (rep == 0 ? 18 : 5)]);
      }
      std::vector<int32_t> expected;
      for (const std::string& t : naive.tokens(w)) expected.push_back(*tok.token_to_id(t));
      EXPECT_EQ(tok.encode(w, false), expected) << w;
    }
  }
}

TEST(EdgeCases, ThreadsShareOneTokenizer) {
  const auto& vectors = reference_vectors();
  for (const char* name : kNames) tokenizer(name);  // load before the threads start
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < vectors.size();
           i += 2) {  // overlapping halves: every word is seen by two threads
        if (tokenizer(vectors[i].tokenizer).encode(vectors[i].text, false) != vectors[i].ids) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

}  // namespace
}  // namespace ctm::text
