// Data selection (DESIGN.md §2): hand-made cases for every rule of the SFT positive, the top-p 0.5 negatives
// and the DPO pair; the seeded shuffle (determinism, ties, input order); and the release's SFT/DPO JSON
// shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

#include "ctm/core/rng.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/data/selection.hpp"

namespace ctm::data {
namespace {

// Responses from (extracted answer, correct, how many); texts are "<answer>#<k>" so each is unique.
std::vector<GradedResponse> make(const std::vector<std::tuple<std::string, bool, int>>& spec) {
  std::vector<GradedResponse> out;
  for (const auto& [answer, correct, count] : spec)
    for (int k = 0; k < count; ++k)
      out.push_back(GradedResponse{" r" + answer + "#" + std::to_string(out.size()), answer, correct});
  return out;
}

std::vector<std::string> answers_of(const std::vector<GradedResponse>& r, const std::vector<int64_t>& idx) {
  std::vector<std::string> out;
  for (int64_t i : idx) out.push_back(r[i].extracted);
  return out;
}

// The shuffled order the module must use: Rng(mix_seed(seed, question, 0)) over 0..n-1.
std::vector<int64_t> shuffled(size_t n, uint64_t seed, uint64_t question) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  Rng rng(mix_seed(seed, question, 0));
  rng.shuffle(order);
  return order;
}

int64_t first_in_order(const std::vector<int64_t>& order, const std::vector<GradedResponse>& r,
                       const std::string& answer) {
  for (int64_t i : order)
    if (r[i].extracted == answer) return i;
  return -1;
}

TEST(Selection, LargestGroupsGivePositiveNegativesAndPair) {
  // correct "5" ×3, correct-looking other gold "5.0" ×1, incorrect "7" ×4, "8" ×2, "9" ×1 -> 7 incorrect.
  const auto r = make({{"7", false, 4}, {"5", true, 3}, {"8", false, 2}, {"9", false, 1}, {"5.0", true, 1}});
  const QuestionSelection s = select_responses(r, 42, 3);
  const auto order = shuffled(r.size(), 42, 3);
  EXPECT_EQ(s.positive, first_in_order(order, r, "5"));  // a random member (first after the shuffle)
  EXPECT_EQ(s.chosen, s.positive);
  EXPECT_EQ(s.rejected, first_in_order(order, r, "7"));
  // need = ceil(7 / 2) = 4: "7" (4) -> 0: stop.
  EXPECT_EQ(answers_of(r, s.negatives), std::vector<std::string>({"7"}));
  EXPECT_EQ(s.negatives[0], s.rejected);
}

TEST(Selection, NoCorrectAnswerGivesNegativesButNoPositiveOrPair) {
  const auto r = make({{"1", false, 3}, {"2", false, 2}});
  const QuestionSelection s = select_responses(r, 1, 0);
  EXPECT_EQ(s.positive, -1);
  EXPECT_EQ(s.chosen, -1);
  EXPECT_EQ(s.rejected, -1);
  EXPECT_EQ(answers_of(r, s.negatives), std::vector<std::string>({"1"}));  // need 3: 3 -> 0
}

TEST(Selection, NoIncorrectAnswerGivesPositiveOnly) {
  const auto r = make({{"4", true, 5}});
  const QuestionSelection s = select_responses(r, 1, 0);
  EXPECT_GE(s.positive, 0);
  EXPECT_TRUE(s.negatives.empty());
  EXPECT_EQ(s.chosen, -1);
  EXPECT_EQ(s.rejected, -1);
}

TEST(Selection, EmptyAnswersAreSkippedAndNotCounted) {
  // 6 empty (incorrect) answers, incorrect "3" ×2 and "6" ×1 -> need = ceil(3 / 2) = 2, not ceil(9 / 2).
  const auto r = make({{"", false, 6}, {"3", false, 2}, {"6", false, 1}, {"4", true, 1}});
  const QuestionSelection s = select_responses(r, 9, 2);
  EXPECT_EQ(answers_of(r, s.negatives), std::vector<std::string>({"3"}));  // 2 -> 0
  EXPECT_EQ(r[s.rejected].extracted, "3");
  EXPECT_EQ(r[s.positive].extracted, "4");
  for (const AnswerGroup& g : group_by_answer(r, 9, 2)) EXPECT_FALSE(g.answer.empty());
  // Only empty answers: nothing at all, even though they are "incorrect".
  const auto empty = make({{"", false, 4}, {"", true, 1}});
  const QuestionSelection e = select_responses(empty, 9, 2);
  EXPECT_EQ(e.positive, -1);
  EXPECT_TRUE(e.negatives.empty());
  EXPECT_EQ(e.rejected, -1);
  EXPECT_TRUE(group_by_answer(empty, 9, 2).empty());
}

TEST(Selection, SingletonGroupsAreTakenOnlyFirst) {
  // Four incorrect singletons: need = 2; the first is taken (need 1), the next has size 1 -> stop.
  const auto r = make({{"1", false, 1}, {"2", false, 1}, {"3", false, 1}, {"4", false, 1}, {"0", true, 2}});
  const QuestionSelection s = select_responses(r, 5, 1);
  ASSERT_EQ(s.negatives.size(), 1u);
  // Ties: the first singleton in shuffled order.
  const auto order = shuffled(r.size(), 5, 1);
  int64_t first_wrong = -1;
  for (int64_t i : order)
    if (!r[i].correct) {
      first_wrong = i;
      break;
    }
  EXPECT_EQ(s.negatives[0], first_wrong);
  EXPECT_EQ(s.rejected, first_wrong);
  // A pair (size 2) then singletons: need = ceil(4 / 2) = 2: the pair -> 0: stop.
  const auto p = make({{"1", false, 2}, {"2", false, 1}, {"3", false, 1}});
  EXPECT_EQ(answers_of(p, select_responses(p, 5, 1).negatives), std::vector<std::string>({"1"}));
  // Groups 3, 2, 1, 1 of 7 incorrect: need 4: 3 -> 1, 2 -> -1: two negatives; the singletons never.
  const auto q = make({{"1", false, 3}, {"2", false, 2}, {"3", false, 1}, {"4", false, 1}});
  EXPECT_EQ(answers_of(q, select_responses(q, 5, 1).negatives), std::vector<std::string>({"1", "2"}));
  // Groups 2, 1, 1, 1: need = ceil(5 / 2) = 3: the pair -> 1; need stays > 0 but the next group is a
  // singleton and not the first taken -> stop.
  const auto t = make({{"1", false, 2}, {"2", false, 1}, {"3", false, 1}, {"4", false, 1}});
  EXPECT_EQ(answers_of(t, select_responses(t, 5, 1).negatives), std::vector<std::string>({"1"}));
}

TEST(Selection, NeedIsTheCeilingOfHalfTheIncorrect) {
  // Groups 2, 2, 1 (5 incorrect): ceil(2.5) = 3: 2 -> 1, 2 -> -1: two negatives (floor would give one).
  const auto r = make({{"1", false, 2}, {"2", false, 2}, {"3", false, 1}});
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const QuestionSelection s = select_responses(r, seed, 0);
    ASSERT_EQ(s.negatives.size(), 2u) << "seed " << seed;
    auto got = answers_of(r, s.negatives);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, std::vector<std::string>({"1", "2"}));
  }
  // Groups 2, 2 (4 incorrect): need 2: one negative.
  const auto e = make({{"1", false, 2}, {"2", false, 2}});
  EXPECT_EQ(select_responses(e, 0, 0).negatives.size(), 1u);
  // One incorrect response: need 1: it is taken (first, size 1 allowed).
  const auto one = make({{"1", false, 1}, {"2", true, 3}});
  EXPECT_EQ(answers_of(one, select_responses(one, 0, 0).negatives), std::vector<std::string>({"1"}));
}

TEST(Selection, TiesKeepFirstAppearanceInTheShuffle) {
  const auto r = make({{"a", false, 2}, {"b", false, 2}, {"c", false, 2}, {"d", true, 2}, {"e", false, 3}});
  for (uint64_t seed = 0; seed < 30; ++seed) {
    const auto groups = group_by_answer(r, seed, 7);
    const auto order = shuffled(r.size(), seed, 7);
    ASSERT_EQ(groups.size(), 5u);
    EXPECT_EQ(groups[0].answer, "e");  // the only group of 3
    std::map<std::string, size_t> first;
    for (size_t k = 0; k < order.size(); ++k) first.try_emplace(r[order[k]].extracted, k);
    for (size_t g = 1; g + 1 < groups.size(); ++g)
      EXPECT_LT(first[groups[g].answer], first[groups[g + 1].answer]) << "seed " << seed;
    // Members are in shuffled order; the group's label is its members'.
    for (const AnswerGroup& g : groups) {
      EXPECT_EQ(g.correct, g.answer == "d");
      for (size_t m = 1; m < g.members.size(); ++m)
        EXPECT_LT(std::find(order.begin(), order.end(), g.members[m - 1]),
                  std::find(order.begin(), order.end(), g.members[m]));
    }
  }
}

TEST(Selection, DeterministicInTheSeedAndVariesWithIt) {
  const auto r = make({{"1", true, 6}, {"2", false, 5}, {"3", false, 3}, {"4", false, 1}});
  std::set<int64_t> positives;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const QuestionSelection a = select_responses(r, seed, 11), b = select_responses(r, seed, 11);
    EXPECT_EQ(a.positive, b.positive);
    EXPECT_EQ(a.negatives, b.negatives);
    EXPECT_EQ(a.rejected, b.rejected);
    positives.insert(a.positive);
  }
  EXPECT_GT(positives.size(), 1u);  // the member drawn depends on the seed
  // And on the question index (the shuffle is seeded by (seed, question, 0)).
  std::set<int64_t> by_question;
  for (uint64_t q = 0; q < 20; ++q) by_question.insert(select_responses(r, 42, q).positive);
  EXPECT_GT(by_question.size(), 1u);
}

TEST(Selection, InputOrderMattersOnlyThroughTheShuffle) {
  // Distinct group sizes (no ties): whatever the input order, the same answers are selected; the member drawn
  // is the first of its answer in the seeded shuffle of the given order.
  auto r = make({{"1", true, 4}, {"2", false, 3}, {"3", false, 2}, {"4", false, 1}, {"", false, 2}});
  const QuestionSelection base = select_responses(r, 3, 0);
  const auto base_neg = answers_of(r, base.negatives);
  Rng perm_rng(123);
  for (int trial = 0; trial < 10; ++trial) {
    perm_rng.shuffle(r);
    const QuestionSelection s = select_responses(r, 3, 0);
    const auto order = shuffled(r.size(), 3, 0);
    EXPECT_EQ(r[s.positive].extracted, "1");
    EXPECT_EQ(s.positive, first_in_order(order, r, "1"));
    EXPECT_EQ(answers_of(r, s.negatives), base_neg);
    for (int64_t i : s.negatives) EXPECT_EQ(i, first_in_order(order, r, r[i].extracted));
    EXPECT_EQ(s.rejected, first_in_order(order, r, "2"));
  }
}

TEST(Selection, SftAndDpoShapes) {
  std::vector<SampledQuestion> qs(3);
  qs[0] = {"10", "What is 1+1?", {"2"}, make({{"2", true, 2}, {"3", false, 2}, {"4", false, 1}})};
  qs[1] = {"11", "What is 2+2?", {"4"}, make({{"5", false, 3}})};        // no correct: negatives only
  qs[2] = {"12", "What is 3+3?", {"6", "6.0"}, make({{"6", true, 1}})};  // no incorrect: positive only
  std::vector<QuestionSelection> sel;
  for (size_t i = 0; i < qs.size(); ++i) sel.push_back(select_responses(qs[i].responses, 42, i));
  const Json config = {{"seed", 42}};
  const Json sft = build_sft_json(qs, sel, config);
  ASSERT_TRUE(sft.is_object());
  EXPECT_EQ(sft["config"], config);
  ASSERT_EQ(sft["pos"].size(), 2u);
  EXPECT_EQ(sft["pos"]["10"]["question"], "What is 1+1?");
  EXPECT_EQ(sft["pos"]["10"]["response"], python_strip(qs[0].responses[sel[0].positive].text));
  EXPECT_EQ(sft["pos"]["10"]["response"].get<std::string>().front(), 'r');  // " r..." stripped
  EXPECT_EQ(sft["pos"]["12"]["answer"], Json::array({"6", "6.0"}));
  EXPECT_FALSE(sft["pos"].contains("11"));
  // q 10: 3 incorrect -> need 2: "3" (2) -> 0; q 11: 3 -> need 2: "5" (3).
  ASSERT_EQ(sft["neg"].size(), 2u);
  EXPECT_TRUE(sft["neg"].contains("10_0"));
  EXPECT_TRUE(sft["neg"].contains("11_0"));
  EXPECT_EQ(sft["neg"]["11_0"]["answer"], Json::array({"4"}));

  const PromptBuilder prompts(DatasetKind::GSM8K, CTM_SOURCE_DIR "/data");
  const Json dpo = build_dpo_json(qs, sel, prompts, config);
  for (const char* key : {"prompt", "chosen", "rejected", "answer"}) ASSERT_EQ(dpo[key].size(), 1u) << key;
  EXPECT_EQ(dpo["config"], config);
  // The release's convention: few-shot prefix + "Question: q\nAnswer: " (trailing space) + stripped response,
  // which together are the sampled text (the stripped prompt + the response with its leading space).
  const std::string prompt = dpo["prompt"][0];
  EXPECT_EQ(prompt, prompts.prefix() + "Question: What is 1+1?\nAnswer: ");
  const std::string chosen = qs[0].responses[sel[0].chosen].text;
  EXPECT_EQ(dpo["chosen"][0], python_strip(chosen));
  EXPECT_EQ(prompt + dpo["chosen"][0].get<std::string>(), prompts.build("What is 1+1?") + chosen);
  EXPECT_EQ(qs[0].responses[sel[0].rejected].extracted, "3");
  EXPECT_EQ(dpo["rejected"][0], python_strip(qs[0].responses[sel[0].rejected].text));
  EXPECT_EQ(dpo["answer"][0], Json::array({"2"}));
  // Mismatched sizes are a bug.
  EXPECT_ANY_THROW(build_sft_json(qs, {}, config));
}

}  // namespace
}  // namespace ctm::data
