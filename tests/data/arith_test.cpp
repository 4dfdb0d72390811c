// The ARITH generator: determinism, right arithmetic, the wording decides the operation (checked by an
// independent keyword solver), exact divisions, disjoint splits, gradable solutions, the committed files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "arith_check.hpp"
#include "ctm/core/atomic_file.hpp"
#include "ctm/data/arith.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/grade/grader.hpp"

namespace ctm::data {
namespace {

const std::string kData = std::string(CTM_SOURCE_DIR) + "/data";

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::path(testing::TempDir()) / "ctm_data_arith_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// The default command's splits, generated once for the whole suite.
const ArithSplits& default_splits() {
  static const ArithSplits splits = generate_arith_splits(20000, 1000, 42);
  return splits;
}

std::vector<const ArithProblem*> all_problems() {
  std::vector<const ArithProblem*> out;
  for (const auto* split : {&default_splits().train, &default_splits().test})
    for (const auto& p : *split) out.push_back(&p);
  return out;
}

TEST(Arith, SameSeedSameBytesOtherSeedOtherBytes) {
  const auto a = generate_arith_splits(500, 100, 7), b = generate_arith_splits(500, 100, 7),
             c = generate_arith_splits(500, 100, 8);
  const auto pa = temp_path("a.jsonl"), pb = temp_path("b.jsonl"), pc = temp_path("c.jsonl");
  write_arith_jsonl(pa, a.train);
  write_arith_jsonl(pb, b.train);
  write_arith_jsonl(pc, c.train);
  EXPECT_EQ(read_file(pa), read_file(pb));
  EXPECT_NE(read_file(pa), read_file(pc));
  int same = 0;
  for (std::size_t i = 0; i < a.train.size(); ++i) same += a.train[i].question == c.train[i].question;
  EXPECT_LT(same, 5);
  // A problem depends on (seed, index) only, not on the split sizes.
  EXPECT_EQ(generate_arith_problem(7, 3).question, a.test[3].question);
  EXPECT_EQ(generate_arith_splits(50, 10, 7).train[20].question, a.train[20].question);
}

// Every "a op b = c" in every solution is right, each starts from the previous result, divisions are exact,
// the ops match the recorded ones, and the last result is the answer, "The answer is N." and "#### N".
TEST(Arith, SolutionArithmeticIsRight) {
  using namespace testing_helpers;
  for (const auto* p : all_problems()) {
    const std::string& sol = p->solution;
    long current = number_after(p->question, 0);  // the first amount
    const auto equations = find_equations(sol);
    ASSERT_EQ(equations.size(), p->ops.size()) << sol;
    for (std::size_t n = 0; n < equations.size(); ++n) {
      const auto& e = equations[n];
      EXPECT_EQ(e.a, current) << sol;
      long want = 0;
      switch (e.op) {
        case '+':
          want = e.a + e.b;
          break;
        case '-':
          want = e.a - e.b;
          break;
        case '*':
          want = e.a * e.b;
          break;
        default:
          EXPECT_EQ(e.a % e.b, 0) << "inexact division: " << sol;
          want = e.a / e.b;
      }
      EXPECT_EQ(e.c, want) << sol;
      EXPECT_EQ(e.op, "+-*/"[static_cast<int>(p->ops[n])]) << sol;
      current = e.c;
    }
    EXPECT_EQ(current, p->answer) << sol;
    EXPECT_EQ(final_answer(sol), p->answer) << sol;
    EXPECT_EQ(p->openai_answer(), sol + "\n#### " + std::to_string(p->answer));
  }
}

bool has(const std::string& s, const char* cue) {
  return s.find(cue) != std::string::npos;
}

// An independent reading of the question: the amount follows from the cue words alone (a distractor
// sentence names another thing, an age or a walk and changes nothing).
long solve_by_wording(const std::string& question) {
  using testing_helpers::number_after;
  std::vector<std::string> sentences;
  std::size_t begin = 0;
  for (std::size_t i = 0; i < question.size(); ++i)
    if (question[i] == '.' || question[i] == '?') {
      sentences.push_back(question.substr(begin, i + 1 - begin));
      begin = i + 2;
    }
  if (sentences.size() < 2 || (!has(sentences[0], " has ") && !has(sentences[0], " starts with "))) return -1;
  long x = number_after(sentences[0], 0);
  for (std::size_t i = 1; i + 1 < sentences.size(); ++i) {
    const std::string& s = sentences[i];
    const auto after = [&](const char* cue) {
      return number_after(s, s.find(cue) + std::string(cue).size());
    };
    if (has(s, " holds ")) {
      x *= after(" holds ");
    } else if (has(s, "There are ") && (has(s, " in every ") || has(s, " per "))) {
      x *= after("There are ");
    } else if (has(s, " in it.")) {
      x *= after(" has ");
    } else if (has(s, " times as many ")) {
      x *= number_after(s, 0);
    } else if (has(s, " trades each ")) {
      x *= after(" for ");
    } else if (has(s, " for every ")) {
      x *= after(" gets ");
    } else if (has(s, " equal piles") || has(s, " equal groups")) {
      x /= after(" into ");
    } else if (has(s, " equally among ")) {
      x /= after(" among ");
    } else if (has(s, " buys ") || has(s, " finds ") || has(s, " receives ") || has(s, " gets ")) {
      x += number_after(s, 0);
    } else if (has(s, " gives away ") || has(s, " eats ") || has(s, " loses ") || has(s, " sells ")) {
      x -= number_after(s, 0);
    } else if (has(s, " gives ")) {
      // "gives 3 X to Y" takes away; "gives him 3 X" adds.
      const auto word = s.find(" gives ") + 7;
      const bool to_someone = std::isdigit(static_cast<unsigned char>(s[word]));
      x += to_someone ? -number_after(s, word) : number_after(s, word);
    } else if (!(has(s, " years old") || has(s, " minutes to walk") || has(s, " has "))) {
      return -2;  // a sentence that is neither a step nor a distractor
    }
  }
  return x;
}

TEST(Arith, OperationFollowsFromWording) {
  for (const auto* p : all_problems()) EXPECT_EQ(solve_by_wording(p->question), p->answer) << p->question;
  // The solver is not fooled: one cue word swapped (buys -> sells, holds -> loses) changes its answer.
  int swapped = 0;
  for (const auto* p : all_problems()) {
    for (const auto& [from, to] :
         {std::pair<std::string, std::string>{" buys ", " sells "}, {" holds ", " loses "}}) {
      const auto at = p->question.find(from);
      if (at == std::string::npos) continue;
      const std::string changed = p->question.substr(0, at) + to + p->question.substr(at + from.size());
      EXPECT_NE(solve_by_wording(changed), p->answer) << changed;
      ++swapped;
    }
    if (swapped > 500) break;
  }
  EXPECT_GT(swapped, 500);
}

TEST(Arith, ShapeAndRanges) {
  const ArithRanges ranges;
  for (const auto* split : {&default_splits().train, &default_splits().test}) {
    const auto st = arith_stats(*split);
    const double n = static_cast<double>(st.problems);
    for (int k = ranges.min_steps; k <= ranges.max_steps; ++k) EXPECT_NEAR(st.steps.at(k) / n, 1.0 / 3, 0.05);
    EXPECT_EQ(st.steps.size(), 3u);
    for (auto count : st.ops) EXPECT_GT(count / n, 0.3);  // every operation is common
    EXPECT_NEAR(st.with_distractor / n, ranges.distractor_rate, 0.05);
    EXPECT_GE(st.answer_min, 1);
    EXPECT_LE(st.intermediate_max, ranges.max_value);
    for (const char* w : {"buys", "finds", "receives", "gives him", "gives away", "eats", "loses", "sells",
                          "each", "every", "per", "times", "shares equally", "splits into"})
      EXPECT_GT(st.phrasings.count(w) ? st.phrasings.at(w) : 0, split->size() / 100) << w;
  }
}

TEST(Arith, SplitsAreDisjointAndDistinct) {
  std::set<std::string> test, train;
  for (const auto& p : default_splits().test) EXPECT_TRUE(test.insert(p.question).second) << p.question;
  for (const auto& p : default_splits().train) {
    EXPECT_TRUE(train.insert(p.question).second) << p.question;
    EXPECT_EQ(test.count(p.question), 0u) << p.question;
  }
  EXPECT_EQ(default_splits().train.size(), 20000u);
  EXPECT_EQ(default_splits().test.size(), 1000u);
}

// The GSM8K rules recover the gold from every solution written as a completion would be.
TEST(Arith, GraderRecoversGold) {
  for (const auto* p : all_problems()) {
    const std::string gold = std::to_string(p->answer);
    const auto verdict =
        grade::grade(grade::Rules::GSM8K, grade::GraderKind::Paper, " " + p->solution, {gold});
    EXPECT_TRUE(verdict.correct) << p->solution;
    EXPECT_EQ(verdict.extracted, gold);
  }
}

// The committed data/arith files are what `ctm synth --dataset_name ARITH` (seed 42, 20000 / 1000) writes,
// and they load back through load_problems with the gold and the solution intact.
TEST(Arith, CommittedFilesMatchTheGenerator) {
  const auto train_path = temp_path("train.jsonl"), test_path = temp_path("test.jsonl");
  write_arith_jsonl(train_path, default_splits().train);
  write_arith_jsonl(test_path, default_splits().test);
  EXPECT_TRUE(read_file(kData + "/arith/train.jsonl") == read_file(train_path)) << "regenerate data/arith";
  EXPECT_TRUE(read_file(kData + "/arith/test.jsonl") == read_file(test_path)) << "regenerate data/arith";
  const auto loaded = load_problems(test_split_path(DatasetKind::ARITH, kData));
  ASSERT_EQ(loaded.size(), default_splits().test.size());
  for (std::size_t i = 0; i < loaded.size(); ++i) {
    EXPECT_EQ(loaded[i].question, default_splits().test[i].question);
    EXPECT_EQ(loaded[i].answers, std::vector<std::string>{std::to_string(default_splits().test[i].answer)});
    EXPECT_EQ(loaded[i].solution, default_splits().test[i].solution);
  }
}

TEST(Arith, RangesAreKnobs) {
  ArithRanges small;
  small.max_start = small.max_addend = 3;
  small.max_value = 24;
  small.max_start_containers = 3;
  small.max_steps = 2;
  small.distractor_rate = 0.0;
  const auto splits = generate_arith_splits(300, 50, 1, small);
  for (const auto* split : {&splits.train, &splits.test}) {
    const auto st = arith_stats(*split);
    EXPECT_LE(st.intermediate_max, 24);
    EXPECT_EQ(st.with_distractor, 0);
    EXPECT_EQ(st.steps.size(), 1u);
  }
}

}  // namespace
}  // namespace ctm::data
