// Prompts (byte-exact), Python's strip, stop strings, temperatures, grading rules, and the ARITH few-shot
// file.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>

#include "arith_check.hpp"
#include "ctm/core/error.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/prompt.hpp"

namespace ctm::data {
namespace {

const std::string kData = std::string(CTM_SOURCE_DIR) + "/data";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Expected values printed by CPython 3 (`s.strip()`), as hex-free literals.
TEST(Prompt, PythonStripMatchesCPython) {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"  a b  ", "a b"},
      {"\xc2\xa0x\xe3\x80\x80", "x"},                              // U+00A0, U+3000
      {"\xe2\x80\x8bx\xe2\x80\x8b", "\xe2\x80\x8bx\xe2\x80\x8b"},  // U+200B is not a space
      {"\x1c\x1dx\x1e\x1f", "x"},                                  // the ASCII separators are
      {"\xc2\x85\xe2\x80\xa8x\xe2\x80\xa9\xe2\x80\xaf", "x"},      // U+0085 U+2028 U+2029 U+202F
      {"\t\n\x0b\x0cx\r", "x"},                                    //
      {"\xe2\x81\x9f\xe1\x9a\x80\xe2\x80\x80\xe2\x80\x8ax y\xe2\x80\x87", "x y"},  // U+205F U+1680 U+2000..
      {"\xc3\xa9 ", "\xc3\xa9"},                                                   // é keeps both bytes
      {"\xe1\xa0\x8ex", "\xe1\xa0\x8ex"},                                          // U+180E is not a space
      {"", ""},
      {"   ", ""},
      {"Answer: \n", "Answer:"},
      {"\xff \x80", "\xff \x80"},  // invalid UTF-8 bytes are kept
      {" \xa0", "\xa0"},           // a lone continuation byte is not U+00A0
  };
  for (const auto& c : cases) EXPECT_EQ(python_strip(c.in), c.out) << "input: " << c.in;
}

TEST(Prompt, FormatsAndPrefixPaths) {
  EXPECT_EQ(prompt_format(DatasetKind::GSM8K).question_prefix, "Question: ");
  EXPECT_EQ(prompt_format(DatasetKind::GSM8K).answer_prefix, "\nAnswer: ");
  EXPECT_EQ(prompt_format(DatasetKind::ARITH).question_prefix, "Question: ");
  EXPECT_EQ(prompt_format(DatasetKind::MATH).question_prefix, "Problem: ");
  EXPECT_EQ(prompt_format(DatasetKind::MATH).answer_prefix, "\nSolution: ");
  EXPECT_EQ(prompt_prefix_path(DatasetKind::GSM8K, "D"), "D/prompts/gsm8k_8shot.txt");
  EXPECT_EQ(prompt_prefix_path(DatasetKind::MATH, "D"), "D/prompts/math_4shot.txt");
  EXPECT_EQ(prompt_prefix_path(DatasetKind::ARITH, "D"), "D/prompts/arith_4shot.txt");
}

// Byte-exact against the prompt files, assembled here by hand: prefix + header + question + "\nAnswer:" (the
// release's strip removes the final space; the prefixes start with a letter, so nothing goes at the front).
TEST(Prompt, BuildIsByteExact) {
  const std::string gsm8k = slurp(kData + "/prompts/gsm8k_8shot.txt");
  const std::string math = slurp(kData + "/prompts/math_4shot.txt");
  const std::string arith = slurp(kData + "/prompts/arith_4shot.txt");
  ASSERT_EQ(gsm8k.substr(0, 10), "Question: ");
  ASSERT_EQ(math.substr(0, 9), "Problem: ");
  const std::string q = "Janet’s ducks lay 16 eggs per day. How much?";
  EXPECT_EQ(build_prompt(DatasetKind::GSM8K, q, kData), gsm8k + "Question: " + q + "\nAnswer:");
  EXPECT_EQ(build_prompt(DatasetKind::MATH, "Find $x$.", kData), math + "Problem: Find $x$.\nSolution:");
  EXPECT_EQ(build_prompt(DatasetKind::ARITH, "Tom has 2 apples.", kData),
            arith + "Question: Tom has 2 apples.\nAnswer:");
  // Whitespace inside the question stays; the question's own trailing spaces go with the strip only when
  // nothing follows them (here "\nAnswer: " follows, so they stay).
  EXPECT_EQ(build_prompt(DatasetKind::GSM8K, "  a \n b  ", kData), gsm8k + "Question:   a \n b  \nAnswer:");
  EXPECT_EQ(build_prompt(DatasetKind::GSM8K, "", kData), gsm8k + "Question: \nAnswer:");
  // The cached path and a builder agree; the sizes pin the shipped prefix files.
  PromptBuilder builder(DatasetKind::GSM8K, kData);
  EXPECT_EQ(builder.build(q), build_prompt(DatasetKind::GSM8K, q, kData));
  EXPECT_EQ(builder.prefix().size(), 2245u);
  EXPECT_EQ(math.size(), 1789u);
}

TEST(Prompt, MissingPrefixFileIsNamed) {
  try {
    build_prompt(DatasetKind::GSM8K, "q", "/nonexistent-data");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-data/prompts/gsm8k_8shot.txt"), std::string::npos)
        << e.what();
  }
}

TEST(Prompt, StopStrings) {
  const std::vector<std::string> expected = {
      "\n\nQuestion:", ".\n\nQuestion:", "\n\nProblem:", ".\n\nProblem:"};
  for (auto kind : {DatasetKind::GSM8K, DatasetKind::MATH, DatasetKind::ARITH})
    EXPECT_EQ(stop_strings(kind), expected);
}

TEST(Prompt, TemperatureTable) {
  const struct {
    const char* model;
    double gsm8k, math;
  } table[] = {{"Meta-Llama-3-8B", 0.5, 0.1},
               {"Meta-Llama-3-70B", 0.85, 0.15},
               {"deepseek-math-7b-base", 1.0, 0.3},
               {"Qwen2.5-7B", 0.9, 0.5},
               {"Qwen2.5-32B", 1.1, 0.7}};
  for (const auto& row : table) {
    EXPECT_EQ(default_temperature(row.model, DatasetKind::GSM8K), row.gsm8k) << row.model;
    EXPECT_EQ(default_temperature(row.model, DatasetKind::MATH), row.math) << row.model;
    EXPECT_THROW(default_temperature(row.model, DatasetKind::ARITH), Error) << row.model;
  }
  EXPECT_EQ(default_temperature("tiny", DatasetKind::ARITH), kArithTinyTemperature);
  EXPECT_THROW(default_temperature("tiny", DatasetKind::GSM8K), Error);
  try {
    default_temperature("Mistral-7B", DatasetKind::GSM8K);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Mistral-7B"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--t"), std::string::npos);
  }
}

TEST(Prompt, GradingRules) {
  EXPECT_EQ(grading_rules(DatasetKind::GSM8K), grade::Rules::GSM8K);
  EXPECT_EQ(grading_rules(DatasetKind::ARITH), grade::Rules::GSM8K);
  EXPECT_EQ(grading_rules(DatasetKind::MATH), grade::Rules::MATH);
}

// The ARITH few-shot prefix: 4 examples in the prompt's own shape, right arithmetic, none from the test
// split.
TEST(Prompt, ArithFewShotFile) {
  using namespace testing_helpers;
  const std::string text = slurp(kData + "/prompts/arith_4shot.txt");
  EXPECT_LT(text.size(), 1300u);  // the tiny model's context is 512 tokens
  std::set<std::string> questions;
  std::set<char> ops;
  std::size_t pos = 0;
  while (pos < text.size()) {
    // "Question: q\nAnswer: a\n\n", nothing else.
    ASSERT_EQ(text.compare(pos, 10, "Question: "), 0) << "at byte " << pos;
    const auto q_end = text.find('\n', pos);
    ASSERT_NE(q_end, std::string::npos);
    questions.insert(text.substr(pos + 10, q_end - pos - 10));
    ASSERT_EQ(text.compare(q_end, 9, "\nAnswer: "), 0);
    const auto a_end = text.find("\n\n", q_end + 9);
    ASSERT_NE(a_end, std::string::npos);
    const std::string answer = text.substr(q_end + 9, a_end - q_end - 9);
    ASSERT_EQ(answer.find('\n'), std::string::npos);
    const auto equations = find_equations(answer);
    ASSERT_FALSE(equations.empty()) << answer;
    for (const auto& e : equations) {
      ops.insert(e.op);
      const long want = e.op == '+'   ? e.a + e.b
                        : e.op == '-' ? e.a - e.b
                        : e.op == '*' ? e.a * e.b
                                      : e.a / e.b;
      EXPECT_EQ(e.c, want) << answer;
      if (e.op == '/') {
        EXPECT_EQ(e.a % e.b, 0) << answer;
      }
    }
    EXPECT_EQ(final_answer(answer), equations.back().c) << answer;
    pos = a_end + 2;
  }
  EXPECT_EQ(questions.size(), 4u);
  EXPECT_EQ(ops, (std::set<char>{'+', '-', '*', '/'}));
  for (const auto& p : load_problems(test_split_path(DatasetKind::ARITH, kData)))
    EXPECT_EQ(questions.count(p.question), 0u) << "few-shot example in the test split: " << p.question;
}

}  // namespace
}  // namespace ctm::data
