// Dataset loading: both formats on small fixtures, errors that name file:line, the shipped splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "ctm/core/error.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/io/jsonl.hpp"

namespace ctm::data {
namespace {

const std::string kFixtures = std::string(CTM_TEST_FIXTURES) + "/data";
const std::string kData = std::string(CTM_SOURCE_DIR) + "/data";

std::string temp_file(const std::string& name, const std::string& content) {
  const auto dir = std::filesystem::path(testing::TempDir()) / "ctm_data_dataset_test";
  std::filesystem::create_directories(dir);
  const auto path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The message of the ctm::Error that fn throws ("" when it does not throw).
template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Dataset, ParseNames) {
  EXPECT_EQ(parse_dataset("GSM8K"), DatasetKind::GSM8K);
  EXPECT_EQ(parse_dataset("MATH"), DatasetKind::MATH);
  EXPECT_EQ(parse_dataset("ARITH"), DatasetKind::ARITH);
  EXPECT_STREQ(dataset_name(DatasetKind::ARITH), "ARITH");
  const auto msg = error_of([] { parse_dataset("gsm8k"); });
  EXPECT_NE(msg.find("'gsm8k'"), std::string::npos) << msg;
}

TEST(Dataset, OpenAiFormat) {
  const auto problems = load_problems(kFixtures + "/openai_small.jsonl");
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].id, "0");
  EXPECT_EQ(problems[0].question.substr(0, 23), "Natalia sold clips to 4");
  EXPECT_EQ(problems[0].answers, std::vector<std::string>{"72"});
  EXPECT_EQ(problems[0].solution,
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
            "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.");
  EXPECT_EQ(problems[1].id, "1");  // the blank line between records does not count as a record
  EXPECT_EQ(problems[1].answers, std::vector<std::string>{"1234"});  // commas removed
  EXPECT_EQ(problems[1].solution, "It costs 1,000 + 234 = <<1000+234=1234>>1,234 dollars.");
  EXPECT_EQ(problems[2].answers, std::vector<std::string>{"-2"});
  EXPECT_EQ(problems[2].solution, "It is 3 - 5 = -2.");
}

TEST(Dataset, PaperFormat) {
  const auto problems = load_problems(kFixtures + "/paper_small.jsonl");
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].id, "#0#");
  EXPECT_EQ(problems[0].question, "Janet’s ducks lay 16 eggs per day. How many?");
  EXPECT_EQ(problems[0].answers, std::vector<std::string>{"13"});
  EXPECT_EQ(problems[0].solution, "She has 16 - 3 = <<16-3=13>>13 eggs.\n");  // response_label true
  EXPECT_EQ(problems[1].id, "215");                                           // a number id
  EXPECT_EQ(problems[1].answers, (std::vector<std::string>{"\\frac{3}{4}", "0.75"}));
  EXPECT_EQ(problems[1].solution, "");  // a wrong model response is not a solution
  EXPECT_EQ(problems[2].answers, std::vector<std::string>{"42"});
}

TEST(Dataset, MaxItems) {
  EXPECT_EQ(load_problems(kFixtures + "/paper_small.jsonl", 2).size(), 2u);
  EXPECT_EQ(load_problems(kFixtures + "/paper_small.jsonl", 0).size(), 0u);
}

TEST(Dataset, FormatsMixPerLine) {
  const auto path = temp_file("mixed.jsonl",
                              "{\"question\": \"a\", \"answer\": \"x\\n#### 5\"}\n"
                              "{\"id\": 7, \"question\": \"b\", \"answer\": [\"6\"]}\n");
  const auto problems = load_problems(path);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].answers[0], "5");
  EXPECT_EQ(problems[1].id, "7");
  EXPECT_EQ(problems[1].answers[0], "6");
}

TEST(Dataset, BadLinesNameFileAndLine) {
  const std::string good = "{\"question\": \"q\", \"answer\": \"s\\n#### 1\"}\n";
  struct Case {
    std::string bad_line, expected;
  };
  const std::vector<Case> cases = {
      {"{\"question\": \"q\", \"answer\": \"no marker\"}", "####"},
      {"{\"question\": \"q\", \"answer\": \"s\\n#### ,\"}", "empty"},
      {"{\"question\": 3, \"answer\": \"s\\n#### 1\"}", "question"},
      {"{\"answer\": [\"1\"]}", "question"},
      {"{\"question\": \"q\"}", "answer"},
      {"{\"question\": \"q\", \"answer\": []}", "empty list"},
      {"{\"question\": \"q\", \"answer\": [null]}", "answer"},
      {"{\"question\": \"q\", \"answer\": 5}", "answer"},
      {"{\"id\": [1], \"question\": \"q\", \"answer\": [\"1\"]}", "id"},
      {"[1, 2]", "object"},
      {"{\"question\": \"q\", ", ""},  // not JSON
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    // Line 4: two good records and a blank line before the bad one.
    const auto path =
        temp_file("bad" + std::to_string(i) + ".jsonl", good + good + "\n" + cases[i].bad_line + "\n");
    const auto msg = error_of([&] { load_problems(path); });
    EXPECT_NE(msg.find(path + ":4"), std::string::npos) << "case " << i << ": " << msg;
    EXPECT_NE(msg.find(cases[i].expected), std::string::npos) << "case " << i << ": " << msg;
  }
  const auto missing = error_of([] { load_problems("/nonexistent/x.jsonl"); });
  EXPECT_NE(missing.find("/nonexistent/x.jsonl"), std::string::npos) << missing;
}

TEST(Dataset, SplitPaths) {
  EXPECT_EQ(test_split_path(DatasetKind::GSM8K, "D"), "D/ctm/GSM8K_test.jsonl");
  EXPECT_EQ(test_split_path(DatasetKind::MATH, "D"), "D/ctm/MATH_test.jsonl");
  EXPECT_EQ(test_split_path(DatasetKind::ARITH, "D"), "D/arith/test.jsonl");
  EXPECT_EQ(train_split_path(DatasetKind::GSM8K, "D"), "D/gsm8k/train.jsonl");
  EXPECT_EQ(train_split_path(DatasetKind::ARITH, "D"), "D/arith/train.jsonl");
  EXPECT_NE(error_of([] { train_split_path(DatasetKind::MATH, "D"); }).find("MATH"), std::string::npos);
}

// The shipped files: sizes from shared/README.md, and the paper's GSM8K test file agrees with the openai one
// (same questions in the same order; the paper keeps thousands separators in its golds).
TEST(Dataset, ShippedSplits) {
  const auto paper = load_problems(test_split_path(DatasetKind::GSM8K, kData));
  const auto openai = load_problems(kData + "/gsm8k/test.jsonl");
  ASSERT_EQ(paper.size(), 1319u);
  ASSERT_EQ(openai.size(), 1319u);
  int with_commas = 0;
  for (std::size_t i = 0; i < paper.size(); ++i) {
    EXPECT_EQ(paper[i].question, openai[i].question) << i;
    std::string gold = paper[i].answers.at(0);
    with_commas += gold.find(',') != std::string::npos;
    gold.erase(std::remove(gold.begin(), gold.end(), ','), gold.end());
    EXPECT_EQ(gold, openai[i].answers.at(0)) << i;
    EXPECT_FALSE(openai[i].solution.empty());
    EXPECT_EQ(openai[i].solution.find("####"), std::string::npos);
  }
  EXPECT_EQ(with_commas, 14);
  const auto math = load_problems(test_split_path(DatasetKind::MATH, kData));
  ASSERT_EQ(math.size(), 500u);
  EXPECT_EQ(math[0].id, "215");
  EXPECT_EQ(load_problems(train_split_path(DatasetKind::GSM8K, kData)).size(), 7473u);
  EXPECT_EQ(load_problems(train_split_path(DatasetKind::GSM8K, kData), 10).size(), 10u);
}

}  // namespace
}  // namespace ctm::data
