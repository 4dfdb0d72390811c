// The paper grader's symbolic stage: the release calls sympy's parse_expr (Python syntax, standard
// transformations) because its LaTeX parser never loaded. This is a parser of that Python subset onto GiNaC:
// integers are exact, decimals are floats, `**` is power, `^` `&` `|` are integer bit operations (XOR for
// `^`),
// `/` on integers is exact, `5!` is a factorial, names are symbols (pi, E, I are the constants), `2x` and any
// backslash are syntax errors. Where sympy would raise or give a non-expression (tuple, set, relation,
// boolean), the parse fails and the pair is not equal.
#pragma once

#include <ginac/ginac.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ctm::grade {

// Symbols by name, shared by the two sides of a comparison (GiNaC compares symbols by identity).
using SymbolTable = std::map<std::string, GiNaC::symbol>;

// Whether text gets past Python's tokenizer (no GiNaC involved, so it is safe to call in-process): a side
// that does not can never be equal symbolically, and the sandbox is not needed to say so.
bool python_tokenizes(std::string_view text);

std::optional<GiNaC::ex> parse_python_expr(std::string_view text, SymbolTable& symbols);

// The release's symbolic_equal: simplify(a - b) == 0, or N(a), N(b) real and within relative 1e-3.
// Runs GiNaC directly: call it inside run_with_deadline.
bool python_symbolic_equal(const std::string& a, const std::string& b);

}  // namespace ctm::grade
