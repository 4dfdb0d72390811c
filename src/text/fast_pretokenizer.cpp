#include "fast_pretokenizer.hpp"

#include <utf8proc.h>

#include <cstdint>

#include "ctm/text/bpe_trainer.hpp"
#include "utf8.hpp"

namespace ctm::text::detail {

namespace {

enum : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4, kLineEnd = 8 };

struct AsciiClasses {
  uint8_t c[128] = {};
  AsciiClasses() {
    for (int i = 0; i < 128; ++i) {
      if ((i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z')) c[i] = kLetter;
      if (i >= '0' && i <= '9') c[i] = kNumber;
      if (i == ' ' || (i >= 9 && i <= 13)) c[i] = kSpace;
      if (i == '\r' || i == '\n') c[i] |= kLineEnd;
    }
  }
};
const AsciiClasses kAscii;

// Class of the character at s[i]; sets len to its byte length.
inline uint8_t class_at(std::string_view s, size_t i, size_t& len, uint32_t& cp) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    len = 1;
    cp = b;
    return kAscii.c[b];
  }
  size_t j = i;
  cp = utf8_next(s, j);
  len = j - i;
  if (is_white_space(cp)) return kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    default:
      return 0;
  }
}

inline uint8_t class_at(std::string_view s, size_t i, size_t& len) {
  uint32_t cp;
  return class_at(s, i, len, cp);
}

// End of the run of characters whose class has any of `mask`, from i.
inline size_t run_end(std::string_view s, size_t i, uint8_t mask) {
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (!(kAscii.c[b] & mask)) break;
      ++i;
      continue;
    }
    size_t len;
    if (!(class_at(s, i, len) & mask)) break;
    i += len;
  }
  return i;
}

// 's 't 're 've 'm 'll 'd, case-insensitively (with Unicode case folding: U+017F LATIN SMALL LETTER LONG S is
// s).
size_t contraction_end(std::string_view s, size_t i) {
  size_t j = i + 1;
  if (j >= s.size()) return 0;
  auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); };
  const char c1 = lower(s[j]);
  if (c1 == 't' || c1 == 'm' || c1 == 'd' || c1 == 's') return j + 1;
  if (s.compare(j, 2, "\xc5\xbf") == 0) return j + 2;  // U+017F
  if (j + 1 < s.size()) {
    const char c2 = lower(s[j + 1]);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return j + 2;
  }
  return 0;
}

}  // namespace

FastPattern recognize_fast_pattern(std::string_view pattern) {
  if (pattern == kLlama3Pattern) return FastPattern::Llama3;
  if (pattern == kSingleDigitPattern) return FastPattern::SingleDigit;
  return FastPattern::None;
}

size_t fast_match_end(FastPattern p, std::string_view s, size_t i) {
  size_t len0;
  uint32_t cp0;
  const uint8_t c0 = class_at(s, i, len0, cp0);
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (cp0 == '\'') {
    if (const size_t e = contraction_end(s, i)) return e;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c0 & kLetter) return run_end(s, i + len0, kLetter);
  if (!(c0 & (kLineEnd | kNumber)) && i + len0 < s.size()) {
    size_t len1;
    if (class_at(s, i + len0, len1) & kLetter) return run_end(s, i + len0 + len1, kLetter);
  }
  // \p{N}{1,3} (Llama-3) or \p{N} (Qwen)
  if (c0 & kNumber) {
    size_t e = i + len0;
    for (int k = 1; k < (p == FastPattern::Llama3 ? 3 : 1) && e < s.size(); ++k) {
      size_t len;
      if (!(class_at(s, e, len) & kNumber)) break;
      e += len;
    }
    return e;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  {
    size_t j = i;
    if (cp0 == ' ') j += 1;
    size_t len;
    if (j < s.size() && !(class_at(s, j, len) & (kSpace | kLetter | kNumber))) {
      size_t e = j + len;
      while (e < s.size() && !(class_at(s, e, len) & (kSpace | kLetter | kNumber))) e += len;
      while (e < s.size() && (s[e] == '\r' || s[e] == '\n')) ++e;
      return e;
    }
  }
  // What is left starts with white space: \s*[\r\n]+ | \s+(?!\S) | \s+
  const size_t ws_end = run_end(s, i, kSpace);
  size_t last_line_end = SIZE_MAX;
  for (size_t k = i; k < ws_end; ++k) {
    if (s[k] == '\r' || s[k] == '\n') last_line_end = k;
  }
  if (last_line_end != SIZE_MAX) return last_line_end + 1;
  if (ws_end == s.size()) return ws_end;
  size_t last_start;
  utf8_prev(s, ws_end, last_start);
  if (last_start > i) return last_start;  // give back the last space, which the next word takes
  return ws_end;
}

}  // namespace ctm::text::detail
