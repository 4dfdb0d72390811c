// Hand-written matchers for the pre-tokenizer regexes of Llama-3 and Qwen2.5/3 (and ctm's trainer), several
// times faster than the JIT-compiled regex. They implement the same leftmost-first alternation, backtracking
// included, and are checked against PCRE2 on random text in tests/text/fast_pretokenizer_test.cpp. Any other
// pattern goes to PCRE2.
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// (Qwen: \p{N} instead of \p{N}{1,3}).
#pragma once

#include <cstddef>
#include <string_view>

namespace ctm::text::detail {

enum class FastPattern { None, Llama3, SingleDigit, NumbersUpTo3, CjkKana, DeepSeek };

// Which hand-written matcher a regex of tokenizer.json has, if any (the pattern text must be exactly the
// same).
FastPattern recognize_fast_pattern(std::string_view pattern);

// The leftmost match at or after `from` (none of these patterns matches empty text); false when there is
// none. s is valid UTF-8.
bool fast_search(FastPattern p, std::string_view s, size_t from, size_t& match_start, size_t& match_end);

}  // namespace ctm::text::detail
