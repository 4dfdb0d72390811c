// The critical-token rule on hand-made count sequences (each case says which clause of the rule it exercises)
// and pass@k against the binomial formula computed with lgamma, independently of the product form.
#include <gtest/gtest.h>

#include <cmath>

#include "ctm/core/error.hpp"
#include "ctm/data/critical.hpp"

namespace ctm::data {
namespace {

int32_t rule(const std::vector<int16_t>& correct) {
  return critical_position(correct, std::vector<int16_t>(correct.size(), 64));
}

TEST(CriticalToken, FirstAllWrongPrefixIsTheCandidate) {
  EXPECT_EQ(rule({40, 30, 2, 0, 0, 1, 0}), 3);
  EXPECT_EQ(rule({0, 0, 0}), 0);
  EXPECT_EQ(rule({10, 5, 1}), -1);  // no prefix with 0 correct: none
}

TEST(CriticalToken, MoreThanThreeCorrectLaterDropsTheCandidate) {
  // 3 correct after the candidate does not drop it; 4 does, and the next all-wrong prefix is the new one.
  EXPECT_EQ(rule({20, 0, 3, 0, 2}), 1);
  EXPECT_EQ(rule({20, 0, 4, 1, 0, 0}), 4);
  // Dropped and no new candidate: the last one dropped is the result.
  EXPECT_EQ(rule({20, 0, 9, 7, 5}), 1);
  EXPECT_EQ(rule({20, 0, 9, 0, 12, 6}), 3);  // the latest dropped candidate
}

TEST(CriticalToken, PositionsWithoutRolloutsAreSkipped) {
  const std::vector<int16_t> correct = {0, 12, 0, 0, 5}, total = {0, 64, 0, 64, 64};
  // Index 0 and 2 have no rollouts; index 3 is the candidate, dropped by index 4 (5 > 3): the last one.
  EXPECT_EQ(critical_position(correct, total), 3);
  EXPECT_THROW(critical_position({0, 1}, {64}), Error);
}

double binomial_ratio(int64_t a, int64_t b, int64_t k) {  // C(a, k) / C(b, k) via lgamma
  if (a < k) return 0.0;
  auto lc = [](int64_t n, int64_t r) {
    return std::lgamma(n + 1.0) - std::lgamma(r + 1.0) - std::lgamma(n - r + 1.0);
  };
  return std::exp(lc(a, k) - lc(b, k));
}

TEST(PassAtK, MatchesTheBinomialFormula) {
  for (int64_t c : {0, 1, 5, 32, 63, 64})
    for (int64_t k : {1, 2, 8, 33, 64})
      EXPECT_NEAR(pass_at_k(64, c, k), 1.0 - binomial_ratio(64 - c, 64, k), 1e-12) << "c " << c << " k " << k;
  EXPECT_DOUBLE_EQ(pass_at_k(64, 16, 1), 0.25);  // pass@1 is the success rate
  EXPECT_DOUBLE_EQ(pass_at_k(64, 0, 64), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(64, 1, 64), 1.0);
  EXPECT_THROW(pass_at_k(4, 1, 5), Error);
  EXPECT_THROW(pass_at_k(4, 5, 1), Error);
}

TEST(PassAtK, MeanOverItemsCountsAnItemForTheKItReaches) {
  const auto m = mean_pass_at_k({{4, 1}, {2, 2}}, 5);
  ASSERT_EQ(m.size(), 5u);
  EXPECT_DOUBLE_EQ(*m[0], (0.25 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(*m[1], (1.0 - 3.0 / 4 * 2.0 / 3 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(*m[2], 1.0 - 3.0 / 4 * 2.0 / 3 * 1.0 / 2);  // only the first item has n >= 3
  EXPECT_DOUBLE_EQ(*m[3], 1.0);
  EXPECT_FALSE(m[4].has_value());
}

}  // namespace
}  // namespace ctm::data
