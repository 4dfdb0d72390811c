// Answer grading: extraction of the final answer from a completion and the two equivalence checks of
// DESIGN.md §2 "Grading".
//
// - `paper` reproduces the labels of the paper's release, surprises included (Python float rules, `^` is XOR,
//   LaTeX is not read as mathematics, 300 = 3 through the ×100 leniency).
// - `math` reads LaTeX as mathematics with a real CAS (GiNaC) and has no leniency.
//
// Both run the same extraction (extract.hpp). String and number comparisons run in-process; only pairs that
// reach the symbolic stage are compared in a forked child with a hard 1 s deadline (sandbox.hpp), so a
// hostile expression can neither hang nor crash the caller. Every function here is thread-safe.
#pragma once

#include <string>
#include <vector>

namespace ctm::grade {

enum class Rules { GSM8K, MATH };  // ARITH is graded with the GSM8K rules
enum class GraderKind { Paper, Math };

// "GSM8K" | "ARITH" -> GSM8K, "MATH" -> MATH; ctm::Error naming the value otherwise.
Rules parse_rules(const std::string& dataset_name);
// "paper" | "math"; ctm::Error naming the value otherwise.
GraderKind parse_grader(const std::string& name);
const char* grader_name(GraderKind kind);

// The final answer of a completion under the dataset's rules ("" when there is none).
std::string extract_answer(Rules rules, const std::string& completion);

// Whether an extracted answer equals one gold answer.
bool is_equiv(GraderKind kind, Rules rules, const std::string& extracted, const std::string& gold);

struct Verdict {
  std::string extracted;
  bool correct = false;
};

// Extracts once and compares against every gold; any gold may match.
Verdict grade(Rules rules, GraderKind kind, const std::string& completion,
              const std::vector<std::string>& golds);

}  // namespace ctm::grade
