// Every MATH500 gold answer (data/ctm/MATH_test.jsonl) is equal to itself and to a \boxed{} completion that
// contains it, under both graders. No exceptions were needed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ctm/grade/grader.hpp"
#include "ctm/grade/latex_expr.hpp"
#include "ctm/io/jsonl.hpp"

namespace {

using namespace ctm::grade;

std::vector<std::string> math500_golds() {
  std::vector<std::string> golds;
  for (const auto& record : ctm::read_jsonl(std::string(CTM_SOURCE_DIR) + "/data/ctm/MATH_test.jsonl"))
    for (const auto& g : record.at("answer")) golds.push_back(g.get<std::string>());
  return golds;
}

TEST(Math500Golds, FileHasFiveHundred) {
  EXPECT_EQ(math500_golds().size(), 500u);
}

TEST(Math500Golds, EqualToItselfBothGraders) {
  for (const auto& g : math500_golds()) {
    EXPECT_TRUE(is_equiv(GraderKind::Paper, Rules::MATH, g, g)) << "paper: " << g;
    EXPECT_TRUE(is_equiv(GraderKind::Math, Rules::MATH, g, g)) << "math: " << g;
  }
}

TEST(Math500Golds, BoxedCompletionBothGraders) {
  for (const auto& g : math500_golds()) {
    std::string completion = "We simplify step by step.\nTherefore the result is $\\boxed{" + g + "}$.";
    EXPECT_TRUE(grade(Rules::MATH, GraderKind::Paper, completion, {g}).correct) << "paper: " << g;
    EXPECT_TRUE(grade(Rules::MATH, GraderKind::Math, completion, {g}).correct) << "math: " << g;
  }
}

// The math grader's own reading: every gold that is a single expression (not a tuple, interval, list, set,
// matrix, equation, text or base-b number) parses, and the CAS finds it equal to itself.
TEST(Math500Golds, ScalarGoldsParseAndAreCasEqualToThemselves) {
  int scalar = 0;
  for (const auto& g : math500_golds()) {
    bool structural = g.find_first_of(",=_[") != std::string::npos ||
                      g.find("\\begin") != std::string::npos || g.find("\\pm") != std::string::npos ||
                      g.find("\\cup") != std::string::npos || g.find("\\{") != std::string::npos ||
                      g.find("{") == 0;
    if (structural) continue;
    ++scalar;
    SymbolTable symbols;
    EXPECT_TRUE(parse_latex_expr(g, symbols).has_value()) << "no parse: " << g;
    EXPECT_TRUE(latex_symbolic_equal(g, g)) << "not CAS-equal to itself: " << g;
  }
  EXPECT_GT(scalar, 430);
}

}  // namespace
