// Fuzz target: answer extraction and the two equivalence checks (ctm/grade/extract.hpp, grader.hpp).
// Input: a completion, then NUL-separated gold answers (at most two are used; none: "42" and "\frac{1}{2}").
// Each input runs the extraction helpers and both rules' extraction, then grade() under one rules x grader
// pair (the input size modulo 4 picks it) and that grader on the two golds against each other (arbitrary
// strings reach the equivalence checks that way, not only extracted answers).
//
// Symbolic comparisons run in the grader's own sandbox (a forked child with a 1 s deadline), so this target
// forks: a few children per input at most, one at a time, each killed after 1 s. Forking an ASan process
// costs about a millisecond (its page tables are copied), which is why one grader runs per input. A crash
// inside a child does not stop the fuzzer, but libFuzzer's death callback, inherited through fork, still
// writes the input as a crash-* artifact (tools/fuzz/run.sh counts them). Run with a -timeout of several
// seconds (run.sh uses 30 s).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ctm/grade/extract.hpp"
#include "ctm/grade/grader.hpp"
#include "fuzz_util.hpp"

namespace {

using ctm::fuzz::require;
using namespace ctm::grade;

// s is "" or one match of -?\d*\.?\d+ (independently of extract.cpp's matcher).
bool is_number_match(const std::string& s) {
  if (s.empty()) return true;
  size_t i = s[0] == '-' ? 1 : 0, digits = 0, dots = 0;
  for (; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (++dots > 1) return false;
    } else if (s[i] >= '0' && s[i] <= '9') {
      ++digits;
    } else {
      return false;
    }
  }
  return digits > 0 && s.back() != '.';
}

void check_helpers(std::string_view completion) {
  const std::string cut = cut_at_stop(completion);
  require(completion.compare(0, cut.size(), cut) == 0, "cut_at_stop() is not a prefix of the completion");
  const std::string first = first_number(completion), last = last_number(completion);
  require(is_number_match(first) && completion.find(first) != std::string_view::npos,
          "first_number() is not a number of the text");
  require(is_number_match(last) && completion.find(last) != std::string_view::npos,
          "last_number() is not a number of the text");
  require(is_number_match(extract_gsm8k(completion)), "extract_gsm8k() is not a number");
  extract_math(completion);
  strip_string(std::string(completion));
  python_float(completion);
  const std::string stripped = py_strip(completion);
  require(stripped.size() <= completion.size(), "py_strip() grows the text");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string completion(input.substr(0, nul));
  std::vector<std::string> golds;
  for (size_t start = nul; start != std::string_view::npos && golds.size() < 2;) {
    const size_t next = input.find('\0', start + 1);
    golds.emplace_back(input.substr(start + 1, next == std::string_view::npos ? next : next - start - 1));
    start = next;
  }
  if (golds.empty()) golds = {"42", "\\frac{1}{2}"};

  check_helpers(completion);
  const Rules rules = size % 2 ? Rules::MATH : Rules::GSM8K;
  const GraderKind kind = size / 2 % 2 ? GraderKind::Math : GraderKind::Paper;
  const Verdict v = grade(rules, kind, completion, golds);
  require(v.extracted == extract_answer(rules, completion), "grade() extracts another answer");
  if (golds.size() == 2) is_equiv(kind, rules, golds[0], golds[1]);
  return 0;
}
