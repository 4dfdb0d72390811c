// The two equivalence checks on already-extracted answers (grader.hpp's is_equiv dispatches to them).
#pragma once

#include <string>

namespace ctm::grade {

// The release's math_equal (DESIGN.md §2): string, normalised gold, Python floats within 1e-4 of gold,
// gold/100 or gold*100, equations, then the Python-syntax symbolic stage in a 1 s sandbox.
bool paper_equal(const std::string& pred, const std::string& gold);

// LaTeX-aware equivalence with GiNaC (DESIGN.md §2 `math`).
bool math_equal(const std::string& pred, const std::string& gold);

// Cached, sandboxed symbolic comparison: fn(a, b) runs in a forked child with the 1 s deadline; the verdict
// of each (tag, a, b) is remembered for the life of the process (answers repeat a lot across samples).
bool sandboxed_symbolic(const char* tag, const std::string& a, const std::string& b,
                        bool (*fn)(const std::string&, const std::string&));

}  // namespace ctm::grade
