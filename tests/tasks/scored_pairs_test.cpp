// What train_cdpo trains on: the pairs' response starts found by bytes on the real tiny tokenizer, and the
// cDPO weights aligned with the rejected tokens by index, the EOS weighing 1.
#include <gtest/gtest.h>

#include "ctm/core/error.hpp"
#include "ctm/tasks/scored_pairs.hpp"

namespace ctm::tasks {
namespace {

const std::string kTiny = std::string(CTM_SOURCE_DIR) + "/data/models/tiny";

TEST(ScoredPairs, ResponseStartIsTheFirstTokenWithAResponseByte) {
  const text::Tokenizer tok = text::Tokenizer::load(kTiny);
  data::DpoPairText p;
  p.prompt = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: ";
  p.chosen = "Tom has 3 + 4 = 7 apples.\nThe answer is 7.";
  p.rejected = "Tom has 3 - 4 = -1 apples.\nThe answer is -1.";
  const auto pairs = tokenize_pairs(tok, {p});
  ASSERT_EQ(pairs.size(), 1u);
  for (const auto* side : {&pairs[0].chosen, &pairs[0].rejected}) {
    const std::string response = side == &pairs[0].chosen ? p.chosen : p.rejected;
    // The whole text is the sequence; tokens before response_start hold prompt bytes only.
    EXPECT_EQ(tok.decode(side->ids), p.prompt + response);
    const std::vector<int32_t> head(side->ids.begin(), side->ids.begin() + side->response_start);
    const std::string before = tok.decode(head);
    EXPECT_LE(before.size(), p.prompt.size());
    EXPECT_EQ(p.prompt.compare(0, before.size(), before), 0);
    const std::vector<int32_t> with_first(side->ids.begin(), side->ids.begin() + side->response_start + 1);
    EXPECT_GT(tok.decode(with_first).size(), p.prompt.size());
  }
  EXPECT_EQ(pairs[0].prompt_tokens,
            std::min(pairs[0].chosen.response_start, pairs[0].rejected.response_start));
}

TokenizedPair hand_pair(std::vector<int32_t> chosen, std::vector<int32_t> rejected, int32_t start) {
  TokenizedPair t;
  t.chosen = {std::move(chosen), start};
  t.rejected = {std::move(rejected), start};
  t.prompt_tokens = start;
  return t;
}

TEST(ScoredPairs, CdpoWeightsAreOneMinusCeProbByIndexAndTheEosWeighsOne) {
  const std::vector<TokenizedPair> tokenized = {hand_pair({5, 6, 7, 8}, {5, 6, 9}, 2)};
  const std::vector<std::vector<float>> ce = {{0.5f, 0.25f, 0.9f}};
  const TrainingPairs set = training_pairs(tokenized, &ce, /*eos=*/2, 512, 1024);
  ASSERT_EQ(set.pairs.size(), 1u);
  const train::PreferencePair& p = set.pairs[0];
  EXPECT_EQ(p.chosen, (std::vector<int32_t>{5, 6, 7, 8, 2}));
  EXPECT_EQ(p.rejected, (std::vector<int32_t>{5, 6, 9, 2}));
  EXPECT_EQ(p.chosen_start, 2);
  EXPECT_EQ(p.rejected_start, 2);
  ASSERT_EQ(p.rejected_weights.size(), 4u);
  EXPECT_FLOAT_EQ(p.rejected_weights[0], 0.5f);
  EXPECT_FLOAT_EQ(p.rejected_weights[1], 0.75f);
  EXPECT_FLOAT_EQ(p.rejected_weights[2], 1.0f - 0.9f);
  EXPECT_FLOAT_EQ(p.rejected_weights[3], 1.0f);  // EOS
  // DPO and RPO: no weights.
  EXPECT_TRUE(training_pairs(tokenized, nullptr, 2, 512, 1024).pairs[0].rejected_weights.empty());
  // More scores than rejected tokens: an error naming the pair.
  const std::vector<std::vector<float>> too_many = {{0.1f, 0.1f, 0.1f, 0.1f}};
  EXPECT_THROW(training_pairs(tokenized, &too_many, 2, 512, 1024), Error);
}

TEST(ScoredPairs, LengthLimitsDropPairsAndCountThem) {
  const std::vector<TokenizedPair> tokenized = {hand_pair({1, 2, 3}, {1, 2, 4, 4}, 2),
                                                hand_pair({1, 2, 3, 3, 3}, {1, 2, 4}, 2),
                                                hand_pair({1, 2, 3, 3}, {1, 2, 3, 4}, 3)};
  // max_length 5: the second (5 + EOS) goes; max_prompt 3: the third (3 prompt tokens) goes.
  const TrainingPairs set = training_pairs(tokenized, nullptr, 0, 3, 5);
  EXPECT_EQ(set.dropped, 2);
  ASSERT_EQ(set.pairs.size(), 1u);
  EXPECT_EQ(set.pairs[0].rejected, (std::vector<int32_t>{1, 2, 4, 4, 0}));
}

}  // namespace
}  // namespace ctm::tasks
