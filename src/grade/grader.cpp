// Dispatch: parse the names, extract once, compare with every gold. Also the symbolic-verdict cache.
#include "ctm/grade/grader.hpp"

#include <mutex>
#include <unordered_map>

#include "ctm/core/error.hpp"
#include "ctm/grade/equivalence.hpp"
#include "ctm/grade/extract.hpp"
#include "ctm/grade/sandbox.hpp"

namespace ctm::grade {

Rules parse_rules(const std::string& dataset_name) {
  if (dataset_name == "GSM8K" || dataset_name == "ARITH") return Rules::GSM8K;
  if (dataset_name == "MATH") return Rules::MATH;
  throw Error(str("unknown dataset '", dataset_name, "' for grading (expected GSM8K, MATH or ARITH)"));
}

GraderKind parse_grader(const std::string& name) {
  if (name == "paper") return GraderKind::Paper;
  if (name == "math") return GraderKind::Math;
  throw Error(str("unknown grader '", name, "' (expected paper or math)"));
}

const char* grader_name(GraderKind kind) {
  return kind == GraderKind::Paper ? "paper" : "math";
}

std::string extract_answer(Rules rules, const std::string& completion) {
  return rules == Rules::GSM8K ? extract_gsm8k(completion) : extract_math(completion);
}

bool is_equiv(GraderKind kind, Rules rules, const std::string& extracted, const std::string& gold) {
  if (kind == GraderKind::Paper) {
    if (rules == Rules::GSM8K) {
      // GSM8K answers are compared lower-cased (the extraction already lower-cases the prediction).
      std::string g = gold;
      for (char& c : g) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return paper_equal(extracted, g);
    }
    return paper_equal(extracted, gold);
  }
  return math_equal(extracted, gold);
}

Verdict grade(Rules rules, GraderKind kind, const std::string& completion,
              const std::vector<std::string>& golds) {
  Verdict v;
  v.extracted = extract_answer(rules, completion);
  for (const auto& gold : golds) {
    if (is_equiv(kind, rules, v.extracted, gold)) {
      v.correct = true;
      break;
    }
  }
  return v;
}

bool sandboxed_symbolic(const char* tag, const std::string& a, const std::string& b,
                        bool (*fn)(const std::string&, const std::string&)) {
  static std::mutex mutex;
  static std::unordered_map<std::string, bool> cache;
  std::string key = std::string(tag) + '\x1f' + a + '\x1f' + b;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  SandboxOutcome outcome = run_with_deadline([&] { return fn(a, b); }, kSymbolicDeadline);
  bool equal = outcome == SandboxOutcome::True;
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() > 200000) cache.clear();  // bounded: a long run must not grow without limit
  cache.emplace(std::move(key), equal);
  return equal;
}

}  // namespace ctm::grade
