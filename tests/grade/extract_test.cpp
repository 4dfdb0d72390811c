// The building blocks of extraction: Python float rules, the number regex, the stop cut and every clause of
// strip_string (DESIGN.md §2), each against the value the release's Python gives.
#include <gtest/gtest.h>

#include <cmath>

#include "ctm/core/error.hpp"
#include "ctm/grade/extract.hpp"
#include "ctm/grade/grader.hpp"

namespace {

using namespace ctm::grade;

TEST(PythonFloat, AcceptsWhatPythonAccepts) {
  struct Row {
    const char* text;
    double value;
  };
  for (const Row& r : std::vector<Row>{{"3", 3},
                                       {" 3.5 ", 3.5},
                                       {"-2", -2},
                                       {"+2", 2},
                                       {".5", 0.5},
                                       {"5.", 5},
                                       {"1e3", 1000},
                                       {"1.5E-2", 0.015},
                                       {"4343_6", 43436},
                                       {"1_000.2_5", 1000.25},
                                       {"\t7\n", 7}}) {
    auto v = python_float(r.text);
    ASSERT_TRUE(v.has_value()) << "'" << r.text << "'";
    EXPECT_DOUBLE_EQ(*v, r.value) << "'" << r.text << "'";
  }
  EXPECT_TRUE(std::isinf(*python_float("inf")));
  EXPECT_TRUE(std::isinf(*python_float("-Infinity")));
  EXPECT_TRUE(std::isnan(*python_float("nan")));
}

TEST(PythonFloat, RejectsWhatPythonRejects) {
  for (const char* bad : {"", " ", ".", "1__0", "_1", "1_", "1e", "e5", "1.2.3", "\\frac{1}{2}", "1/2",
                          "0x10", "1,000", "3%", "2i", "- 3", "1 2"}) {
    EXPECT_FALSE(python_float(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(NumberRegex, FindallOrder) {
  EXPECT_EQ(first_number("abc -3.5 and 7"), "-3.5");
  EXPECT_EQ(last_number("abc -3.5 and 7"), "7");
  EXPECT_EQ(last_number("x = 5."), "5");     // "5." : \.?\d+ backtracks
  EXPECT_EQ(last_number("3.14.15"), ".15");  // findall resumes after "3.14"
  EXPECT_EQ(first_number("a-b"), "");
  EXPECT_EQ(first_number("--4"), "-4");
  EXPECT_EQ(last_number("1-2"), "-2");
  EXPECT_EQ(last_number("no digits"), "");
}

TEST(CutAtStop, FirstStopWins) {
  EXPECT_EQ(cut_at_stop("a\n\nQuestion: b\n\nProblem: c"), "a");
  EXPECT_EQ(cut_at_stop("a\n\nProblem: b\n\nQuestion: c"), "a");
  EXPECT_EQ(cut_at_stop("a\nQuestion: b"), "a\nQuestion: b");  // one newline is not a stop
  EXPECT_EQ(cut_at_stop(""), "");
}

TEST(StripString, EveryClause) {
  struct Row {
    const char* in;
    const char* out;
  };
  for (const Row& r : std::vector<Row>{
           {"  5  ", "5"},
           {"5\n", "5"},
           {"5...", "5"},                       // rstrip(".")
           {"\\!5", "5"},                       // \!
           {"5\\ cm", "5cm"},                   // "\ " then spaces
           {"\\\\frac{1}{2}", "\\frac{1}{2}"},  // \\ -> \ .
           {"\\tfrac{1}{2}", "\\frac{1}{2}"},
           {"\\dfrac{1}{2}", "\\frac{1}{2}"},
           {"\\left(1,2\\right)", "(1,2)"},
           {"5\\text{ cm}", "5"},       // trailing \text{...} removed
           {"\\text{east}", "{east}"},  // ...but not when nothing would be left
           {"90^{\\circ}", "90"},
           {"90^\\circ", "90"},
           {"\\$18", "18"},
           {"$18$", "18"},
           {"x\\in[1,2]", "[1,2]"},
           {"50\\%", "50"},
           {"50%", "50"},
           {"{.5}", "{0.5}"},
           {"1 .5", "10.5"},  // " ." -> " 0." then spaces removed
           {"2\\cdot3", "23"},
           {"infinity", "\\infty"},
           {"(2,inf)", "(2,\\infty)"},
           {"cats and dogs", "catsdogs"},
           {"\\mathbf{v}", "{v}"},
           {"5\\mbox{ cm}+1", "5+1"},
           {"3+2j", "3+2i"},  // j -> i when there is no i
           {"i+j", "i+j"},
           {"5.000", "5"},
           {"5.00x", "5x"},
           {"5.05", "5.05"},
           {".5", "0.5"},
           {"x=5", "5"},
           {"xy = 5", "xy=5"},  // left side "xy " is 3 characters
           {"x=y=5", "x=y=5"},
           {"\\sqrt3", "\\sqrt{3}"},
           {"\\sqrt 3", "\\sqrt3"},  // \w+ does not match the space; the space goes later
           {"\\sqrt{3}", "\\sqrt{3}"},
           {"\\frac12", "\\frac{1}{2}"},
           {"\\frac1{72}", "\\frac{1}{72}"},
           {"\\frac{72}1", "\\frac{72}1"},
           {"\\frac1", "\\frac1"},  // _fix_fracs gives up
           {"3/4", "\\frac{3}{4}"},
           {"-3/4", "\\frac{-3}{4}"},
           {"03/4", "03/4"},  // int("03") prints "3": not rewritten
           {"3.5/4", "3.5/4"},
           {"1/2/3", "1/2/3"},
           {"", ""},
       }) {
    EXPECT_EQ(strip_string(r.in), r.out) << "strip_string('" << r.in << "')";
  }
}

TEST(Extraction, GsmRules) {
  EXPECT_EQ(extract_gsm8k("The answer is 1,234."), "1234");
  EXPECT_EQ(extract_gsm8k("Pay $5 now; later 7"), "7");
  EXPECT_EQ(extract_gsm8k("The answer is x. The answer is 5."), "");  // only the text between the first two
  EXPECT_EQ(extract_gsm8k("THE ANSWER IS 5"), "5");                   // no marker (case): last number
}

TEST(Extraction, MathRules) {
  EXPECT_EQ(extract_math("\\boxed{\\frac{1}{2}"), "\\frac{1}{2}");  // unbalanced: the rest
  EXPECT_EQ(extract_math("\\boxed{}"), "");
  EXPECT_EQ(extract_math("boxed"), "");
  EXPECT_EQ(extract_math("Final Answer: $5$ and $6$. I hope it is correct."),
            "56");  // first to last $, then "$" and "and" go
  EXPECT_EQ(extract_math("he answer is :7."), "7");
  EXPECT_EQ(extract_math("costs $\\$1,000$"), "1000");
}

TEST(Names, ParseRulesAndGrader) {
  EXPECT_EQ(parse_rules("GSM8K"), Rules::GSM8K);
  EXPECT_EQ(parse_rules("ARITH"), Rules::GSM8K);
  EXPECT_EQ(parse_rules("MATH"), Rules::MATH);
  EXPECT_EQ(parse_grader("paper"), GraderKind::Paper);
  EXPECT_EQ(parse_grader("math"), GraderKind::Math);
  try {
    parse_rules("gsm8k");
    FAIL() << "lower-case dataset accepted";
  } catch (const ctm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gsm8k"), std::string::npos) << e.what();
  }
  try {
    parse_grader("sympy");
    FAIL() << "unknown grader accepted";
  } catch (const ctm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sympy"), std::string::npos) << e.what();
  }
}

}  // namespace
