// The BPE trainer: a small corpus -> tokenizer.json -> load -> round trips, merges applied as an independent
// naive BPE applies them, digits kept single, special tokens, determinism.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/text/bpe_trainer.hpp"
#include "ctm/text/tokenizer.hpp"
#include "fixtures.hpp"
#include "naive_bpe.hpp"

namespace ctm::text {
namespace {

using namespace testing_fixtures;

std::vector<std::string> small_corpus() {
  const char* names[] = {"Tom", "Anna", "Lee", "Maria", "Sam"};
  const char* things[] = {"apples", "pencils", "cookies", "marbles", "books"};
  const char* verbs[] = {"buys", "finds", "loses", "gives away", "eats"};
  std::vector<std::string> texts;
  uint64_t state = 12345;
  auto next = [&](uint64_t n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (state >> 33) % n;
  };
  for (int i = 0; i < 300; ++i) {
    const std::string who = names[next(5)], what = things[next(5)], verb = verbs[next(5)];
    const uint64_t a = 10 + next(90), b = 1 + next(9);
    texts.push_back(who + " has " + std::to_string(a) + " " + what + " and " + verb + " " +
                    std::to_string(b) + " more. How many " + what + " does " + who + " have now?\n" + who +
                    " has " + std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(a + b) +
                    " " + what + ".\n#### " + std::to_string(a + b));
  }
  return texts;
}

BpeTrainerOptions options() {
  BpeTrainerOptions o;
  o.vocab_size = 300;
  o.special_tokens = {"<|begin_of_text|>", "<|end_of_text|>"};
  o.bos_token = "<|begin_of_text|>";
  o.eos_token = "<|end_of_text|>";
  o.split_digits = true;
  return o;
}

TEST(BpeTrainer, DeterministicAndSized) {
  const auto texts = small_corpus();
  const Json a = train_bpe(texts, options());
  const Json b = train_bpe(texts, options());
  EXPECT_EQ(a.dump(), b.dump());
  const Tokenizer tok = Tokenizer::from_json(a);
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(a["model"]["merges"].size(), 300u - 256u - 2u);
  EXPECT_EQ(tok.token_to_id("<|begin_of_text|>"), 298);
  EXPECT_EQ(tok.token_to_id("<|end_of_text|>"), 299);
  EXPECT_TRUE(tok.is_special(298));
}

TEST(BpeTrainer, RoundTripsAndKeepsDigitsSingle) {
  const auto texts = small_corpus();
  const Tokenizer tok = Tokenizer::from_json(train_bpe(texts, options()));
  size_t bytes = 0, tokens = 0;
  for (const std::string& t : texts) {
    const auto ids = tok.encode(t, false);
    bytes += t.size();
    tokens += ids.size();
    ASSERT_EQ(tok.decode(ids), t);
  }
  EXPECT_LT(tokens * 10, bytes * 6) << "the merges should compress the training text: " << tokens
                                    << " tokens for " << bytes << " bytes";
  const std::string unseen = "Zoë paid 1234 € for 56 🍎🍏 — 東京!\r\n\tdone";
  EXPECT_EQ(tok.decode(tok.encode(unseen, false)), unseen);
  // No token holds a digit together with anything else.
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string bytes = *tok.token_bytes(id);
    const bool has_digit = bytes.find_first_of("0123456789") != std::string::npos;
    if (has_digit) {
      EXPECT_EQ(bytes.size(), 1u) << bytes;
    }
  }
  const auto digits = tok.encode("2024", false);
  ASSERT_EQ(digits.size(), 4u);
  EXPECT_EQ(tok.decode({digits[0]}), "2");
}

TEST(BpeTrainer, EncodingAppliesTheMergesInRankOrder) {
  const auto texts = small_corpus();
  const Json j = train_bpe(texts, options());
  const Tokenizer tok = Tokenizer::from_json(j);
  const NaiveBpe naive(j["model"]);
  std::set<std::string> words;
  for (const std::string& t : texts) {
    // " word" pieces (letters after one space) are single pre-tokens.
    for (size_t i = 0; i < t.size();) {
      size_t j2 = i + 1;
      while (j2 < t.size() && std::isalpha(static_cast<unsigned char>(t[j2]))) ++j2;
      if (t[i] == ' ' && j2 > i + 1) words.insert(t.substr(i, j2 - i));
      i = j2;
    }
  }
  ASSERT_GT(words.size(), 20u);
  for (const std::string& w : words) {
    std::vector<int32_t> expected;
    for (const std::string& token : naive.tokens(w)) expected.push_back(*tok.token_to_id(token));
    EXPECT_EQ(tok.encode(w, false), expected) << w;
  }
}

TEST(BpeTrainer, SpecialTokensAndConfig) {
  BpeTrainerOptions o = options();
  o.add_bos_token = true;
  const Json j = train_bpe(small_corpus(), o);
  const std::string dir = temp_root() + "/trained_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  write_json_file_atomic(dir + "/tokenizer.json", j);
  write_json_file_atomic(dir + "/tokenizer_config.json", make_tokenizer_config(o));
  const Tokenizer tok = Tokenizer::load(dir);
  EXPECT_EQ(tok.bos_id(), 298);
  EXPECT_EQ(tok.eos_id(), 299);
  const auto ids = tok.encode("Tom has<|end_of_text|>", true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 298);
  EXPECT_EQ(ids.back(), 299);
  EXPECT_EQ(tok.decode(ids), "<|begin_of_text|>Tom has<|end_of_text|>");
  EXPECT_EQ(tok.encode("Tom has", false).front(), *tok.encode("Tom", false).begin());
  // The same file without the config: the TemplateProcessing post-processor adds BOS too.
  EXPECT_EQ(Tokenizer::from_json(j).encode("Tom", true).front(), 298);
}

TEST(BpeTrainer, RejectsBadInput) {
  BpeTrainerOptions o = options();
  o.vocab_size = 100;
  EXPECT_THROW(train_bpe(small_corpus(), o), Error);
  EXPECT_THROW(train_bpe({std::string("ok \xff")}, options()), Error);
}

}  // namespace
}  // namespace ctm::text
