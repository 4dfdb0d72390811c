// Final-answer extraction and the MATH normalisation (`strip_string`), as the paper's release does them
// (DESIGN.md §2 "Grading"). Python string semantics are reproduced byte for byte where they matter.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ctm::grade {

// The completion up to the first "\n\nQuestion:" or "\n\nProblem:" (a model that runs on past its answer).
std::string cut_at_stop(std::string_view completion);

// GSM8K: the first number after "he answer is " (up to its second occurrence), else the last number of the
// text; `$ € £ ,` dropped first; lower-cased. "" when there is no number.
std::string extract_gsm8k(std::string_view completion);

// MATH: `Final Answer: ... $x$`, else `\boxed{x}`, else "he answer is x", else the last number; then the
// first line, a leading ':' and a trailing '.' or '/' dropped, then strip_string.
std::string extract_math(std::string_view completion);

// The release's MATH normalisation (every clause of DESIGN.md, in the release's order).
std::string strip_string(std::string s);

// Python's float(s) (surrounding whitespace, sign, '_' between digits, inf/nan, exponent); nullopt where
// Python raises ValueError.
std::optional<double> python_float(std::string_view s);

// All matches of the regex -?\d*\.?\d+ in Python's re.findall order.
std::string first_number(std::string_view s);  // "" if none
std::string last_number(std::string_view s);   // "" if none

// Python's str.strip() for ASCII whitespace.
std::string py_strip(std::string_view s);

}  // namespace ctm::grade
