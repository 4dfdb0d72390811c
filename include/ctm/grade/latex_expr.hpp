// The math grader's parser: a LaTeX answer (after strip_string) read as mathematics onto GiNaC. It knows
// \frac, \sqrt[n]{}, ^ as power, \pi, \infty (a symbol, so intervals compare), \times, \div, implicit
// multiplication (2x, 2\sqrt{5}, (a+5)(b+2)), mixed numbers (1\frac{4}{5} = 9/5), decimals as exact rationals
// (0.5 = 1/2), i as the imaginary unit, the trigonometric and logarithmic functions, |x|, \binom, n!.
#pragma once

#include <ginac/ginac.h>

#include <optional>
#include <string>
#include <string_view>

#include "ctm/grade/python_expr.hpp"  // SymbolTable

namespace ctm::grade {

std::optional<GiNaC::ex> parse_latex_expr(std::string_view text, SymbolTable& symbols);

// a and b are the same value: a - b simplifies to 0, or (no symbols) the values agree to 1e-9 relative, or
// (with symbols) they agree at several points. Runs GiNaC directly: call it inside run_with_deadline.
bool latex_symbolic_equal(const std::string& a, const std::string& b);

// Two equations "l1=r1", "l2=r2" are the same when l1-r1 is a nonzero constant multiple of l2-r2.
bool latex_equation_equal(const std::string& a, const std::string& b);

}  // namespace ctm::grade
