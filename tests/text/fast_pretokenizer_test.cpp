// The hand-written Llama-3 / Qwen pre-tokenizer matchers against PCRE2 running the same regexes, on random
// text built from the characters where the alternatives differ (letters, numbers of every kind, white space
// with and without line ends, apostrophes and contraction letters, marks, symbols, emoji).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../src/text/fast_pretokenizer.hpp"
#include "../../src/text/regex.hpp"
#include "ctm/core/atomic_file.hpp"
#include "ctm/text/bpe_trainer.hpp"
#include "fixtures.hpp"

namespace ctm::text::detail {
namespace {

std::vector<std::pair<size_t, size_t>> regex_pieces(const Regex& re, std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t prev = 0;
  re.for_each_match(s, [&](size_t b, size_t e) {
    if (b > prev) out.emplace_back(prev, b);
    if (e > b) out.emplace_back(b, e);
    prev = e;
  });
  if (prev < s.size()) out.emplace_back(prev, s.size());
  return out;
}

std::vector<std::pair<size_t, size_t>> fast_pieces(FastPattern p, std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t prev = 0, b = 0, e = 0;
  while (fast_search(p, s, prev, b, e)) {
    EXPECT_GT(e, b);
    if (b > prev) out.emplace_back(prev, b);
    out.emplace_back(b, e);
    prev = e;
  }
  if (prev < s.size()) out.emplace_back(prev, s.size());
  return out;
}

TEST(FastPreTokenizer, RecognizesOnlyTheExactPatterns) {
  EXPECT_EQ(recognize_fast_pattern(kLlama3Pattern), FastPattern::Llama3);
  EXPECT_EQ(recognize_fast_pattern(kSingleDigitPattern), FastPattern::SingleDigit);
  EXPECT_EQ(recognize_fast_pattern(std::string(kLlama3Pattern) + "|x"), FastPattern::None);
  // DeepSeek-V3's three Split regexes, as written in its tokenizer.json.
  const nlohmann::json j =
      nlohmann::json::parse(read_file(testing_fixtures::tokenizer_dir("deepseek_v3") + "/tokenizer.json"));
  const auto& pre = j.at("pre_tokenizer").at("pretokenizers");
  EXPECT_EQ(recognize_fast_pattern(pre[0]["pattern"]["Regex"].get<std::string>()), FastPattern::NumbersUpTo3);
  EXPECT_EQ(recognize_fast_pattern(pre[1]["pattern"]["Regex"].get<std::string>()), FastPattern::CjkKana);
  EXPECT_EQ(recognize_fast_pattern(pre[2]["pattern"]["Regex"].get<std::string>()), FastPattern::DeepSeek);
}

TEST(FastPreTokenizer, MatchesPcre2OnRandomText) {
  const std::vector<std::string> alphabet = {"a",
                                             "Z",
                                             "s",
                                             "S",
                                             "t",
                                             "T",
                                             "r",
                                             "e",
                                             "v",
                                             "l",
                                             "L",
                                             "m",
                                             "d",
                                             "D",
                                             "x",
                                             "'",
                                             "'",
                                             " ",
                                             " ",
                                             " ",
                                             "\t",
                                             "\n",
                                             "\r",
                                             "\r\n",
                                             "\xc2\xa0" /* NBSP */,
                                             "\xe3\x80\x80" /* ideographic space */,
                                             "\xc2\x85" /* NEL */,
                                             "\xe1\xa0\x8e" /* U+180E, not space */,
                                             "0",
                                             "7",
                                             "9",
                                             "\xd9\xa3" /* Arabic-indic 3 */,
                                             "\xc2\xb2" /* ² */,
                                             "\xe2\x85\xab" /* Ⅻ */,
                                             "\xc3\xa9",
                                             "\xe4\xb8\xad" /* 中 */,
                                             "\xc5\xbf" /* ſ */,
                                             "\xcc\x81" /* combining */,
                                             "!",
                                             ".",
                                             ",",
                                             "-",
                                             "$",
                                             "<",
                                             ">",
                                             "\xe2\x82\xac" /* € */,
                                             "\xf0\x9f\x98\x80" /* emoji */,
                                             "\xe2\x80\x8d" /* ZWJ */,
                                             "_",
                                             "\x01"};
  const Regex llama(kLlama3Pattern, false, "test"), qwen(kSingleDigitPattern, false, "test");
  std::vector<std::pair<FastPattern, std::unique_ptr<Regex>>> deepseek;
  const nlohmann::json ds =
      nlohmann::json::parse(read_file(testing_fixtures::tokenizer_dir("deepseek_v3") + "/tokenizer.json"));
  for (const auto& p : ds.at("pre_tokenizer").at("pretokenizers")) {
    if (p.at("type") != "Split") continue;
    const std::string pattern = p.at("pattern").at("Regex").get<std::string>();
    deepseek.emplace_back(recognize_fast_pattern(pattern), std::make_unique<Regex>(pattern, false, "test"));
  }
  ASSERT_EQ(deepseek.size(), 3u);
  uint64_t state = 99;
  auto next = [&](uint64_t n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (state >> 33) % n;
  };
  int checked = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s;
    const size_t len = 1 + next(iter < 10000 ? 8 : 40);
    for (size_t k = 0; k < len; ++k) s += alphabet[next(alphabet.size())];
    ASSERT_EQ(fast_pieces(FastPattern::Llama3, s), regex_pieces(llama, s))
        << "Llama-3 pattern on [" << s << "]";
    ASSERT_EQ(fast_pieces(FastPattern::SingleDigit, s), regex_pieces(qwen, s))
        << "Qwen pattern on [" << s << "]";
    ++checked;
  }
  EXPECT_EQ(checked, 20000);
}

}  // namespace
}  // namespace ctm::text::detail
