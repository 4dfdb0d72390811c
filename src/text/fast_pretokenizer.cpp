#include "fast_pretokenizer.hpp"

#include <utf8proc.h>

#include <cstdint>

#include "ctm/text/bpe_trainer.hpp"
#include "utf8.hpp"

namespace ctm::text::detail {

namespace {

enum : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4, kLineEnd = 8, kPunct = 16, kSymbol = 32, kMark = 64 };

uint8_t classify(uint32_t cp) {
  if (is_white_space(cp)) return cp == '\r' || cp == '\n' ? kSpace | kLineEnd : kSpace;
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
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return kPunct;
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
      return kSymbol;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
      return kMark;
    default:
      return 0;
  }
}

struct AsciiClasses {
  uint8_t c[128] = {};
  AsciiClasses() {
    for (uint32_t i = 0; i < 128; ++i) c[i] = classify(i);
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
  return classify(cp);
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

// The white-space alternatives shared by all three patterns, at i (a white-space character):
// \s*[\r\n]+ | \s+(?!\S) | \s+
size_t white_space_end(std::string_view s, size_t i) {
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

// Llama-3 / Qwen: a match starts at every position.
size_t llama_match_end(FastPattern p, std::string_view s, size_t i) {
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
  // What is left starts with white space.
  return white_space_end(s, i);
}

// DeepSeek's third regex at i: the end of its match, or i when none starts there.
size_t deepseek_match_end(std::string_view s, size_t i) {
  size_t len0;
  uint32_t cp0;
  const uint8_t c0 = class_at(s, i, len0, cp0);
  auto ascii_letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+ (every ASCII punctuation or symbol character)
  if (cp0 < 0x80 && (c0 & (kPunct | kSymbol)) && i + 1 < s.size() && ascii_letter(s[i + 1])) {
    size_t e = i + 2;
    while (e < s.size() && ascii_letter(s[e])) ++e;
    return e;
  }
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
  if (c0 & (kLetter | kMark)) return run_end(s, i + len0, kLetter | kMark);
  if (!(c0 & (kLineEnd | kPunct | kSymbol)) && i + len0 < s.size()) {
    size_t len1;
    if (class_at(s, i + len0, len1) & (kLetter | kMark)) return run_end(s, i + len0 + len1, kLetter | kMark);
  }
  //  ?[\p{P}\p{S}]+[\r\n]*
  {
    size_t j = i;
    if (cp0 == ' ') j += 1;
    size_t len;
    if (j < s.size() && (class_at(s, j, len) & (kPunct | kSymbol))) {
      size_t e = run_end(s, j + len, kPunct | kSymbol);
      while (e < s.size() && (s[e] == '\r' || s[e] == '\n')) ++e;
      return e;
    }
  }
  if (c0 & kSpace) return white_space_end(s, i);
  return i;
}

bool in_cjk_kana(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x309F) || (cp >= 0x30A0 && cp <= 0x30FF);
}

// DeepSeek-V3's pre-tokenizer regexes, byte for byte as in its tokenizer.json.
constexpr const char* kNumbersUpTo3Pattern = "\\p{N}{1,3}";
constexpr const char* kCjkKanaPattern =
    "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+";
constexpr const char* kDeepSeekPattern =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

}  // namespace

FastPattern recognize_fast_pattern(std::string_view pattern) {
  if (pattern == kLlama3Pattern) return FastPattern::Llama3;
  if (pattern == kSingleDigitPattern) return FastPattern::SingleDigit;
  if (pattern == kNumbersUpTo3Pattern) return FastPattern::NumbersUpTo3;
  if (pattern == kCjkKanaPattern) return FastPattern::CjkKana;
  if (pattern == kDeepSeekPattern) return FastPattern::DeepSeek;
  return FastPattern::None;
}

bool fast_search(FastPattern p, std::string_view s, size_t from, size_t& match_start, size_t& match_end) {
  switch (p) {
    case FastPattern::Llama3:
    case FastPattern::SingleDigit:
      if (from >= s.size()) return false;
      match_start = from;
      match_end = llama_match_end(p, s, from);
      return true;
    case FastPattern::NumbersUpTo3:
    case FastPattern::CjkKana:
      for (size_t i = from; i < s.size();) {
        size_t len;
        uint32_t cp;
        const uint8_t c = class_at(s, i, len, cp);
        const bool hit = p == FastPattern::NumbersUpTo3 ? (c & kNumber) != 0 : in_cjk_kana(cp);
        if (!hit) {
          i += len;
          continue;
        }
        match_start = i;
        size_t e = i + len;
        for (int k = 1; e < s.size() && (p == FastPattern::CjkKana || k < 3); ++k) {
          const uint8_t ce = class_at(s, e, len, cp);
          if (p == FastPattern::NumbersUpTo3 ? !(ce & kNumber) : !in_cjk_kana(cp)) break;
          e += len;
        }
        match_end = e;
        return true;
      }
      return false;
    case FastPattern::DeepSeek:
      for (size_t i = from; i < s.size(); i += utf8_len(static_cast<unsigned char>(s[i]))) {
        const size_t e = deepseek_match_end(s, i);
        if (e > i) {
          match_start = i;
          match_end = e;
          return true;
        }
      }
      return false;
    case FastPattern::None:
      break;
  }
  return false;
}

}  // namespace ctm::text::detail
