// The paper release's math_equal, clause by clause (DESIGN.md §2 "Grading", `paper`).
#include <algorithm>
#include <cmath>
#include <optional>

#include "ctm/grade/equivalence.hpp"
#include "ctm/grade/extract.hpp"
#include "ctm/grade/python_expr.hpp"

namespace ctm::grade {
namespace {

std::optional<double> release_number(const std::string& s) {
  std::string t;
  for (char c : s)
    if (c != ',' && c != '%') t += c;
  return python_float(t);
}

// math.isclose(a, b, rel_tol=1e-4)
bool isclose(double a, double b, double rel_tol) {
  if (a == b) return true;
  if (std::isinf(a) || std::isinf(b)) return false;
  return std::fabs(a - b) <= rel_tol * std::max(std::fabs(a), std::fabs(b));
}

size_t count_eq(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '='));
}

bool symbolic(const std::string& a, const std::string& b) {
  if (!python_tokenizes(a) || !python_tokenizes(b)) return false;  // LaTeX, braces, ...: no fork needed
  return sandboxed_symbolic("paper", a, b, &python_symbolic_equal);
}

}  // namespace

bool paper_equal(const std::string& pred, const std::string& gold) {
  if (pred == gold) return true;
  if (pred == strip_string(gold)) return true;
  if (pred.empty()) return false;

  auto p = release_number(pred), g = release_number(gold);
  if (p && g) {
    // Both numbers: the verdict is numeric, with the release's percentage leniency (gold/100, gold*100).
    for (double candidate : {*g / 100.0, *g, *g * 100.0})
      if (isclose(*p, candidate, 1e-4)) return true;
    return false;
  }

  std::string ps = py_strip(pred), gs = py_strip(gold);
  auto lhs = [](const std::string& s) { return py_strip(s.substr(0, s.find('='))); };
  auto rhs = [](const std::string& s) { return s.substr(s.find('=') + 1); };
  if (count_eq(ps) == 1 && count_eq(gs) == 1) {
    std::string pd = lhs(ps) + " - (" + py_strip(rhs(ps)) + ")";
    std::string gd = lhs(gs) + " - (" + py_strip(rhs(gs)) + ")";
    if (symbolic(pd, gd) || symbolic("-(" + pd + ")", gd)) return true;
  } else if (count_eq(ps) == 1 && lhs(ps).size() <= 2 && count_eq(gs) == 0) {
    if (paper_equal(rhs(ps), gold)) return true;
  } else if (count_eq(gs) == 1 && lhs(gs).size() <= 2 && count_eq(ps) == 0) {
    if (paper_equal(pred, rhs(gs))) return true;
  }
  return symbolic(ps, gs);
}

}  // namespace ctm::grade
