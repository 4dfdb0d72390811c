// UTF-8 helpers and the Unicode character classes the Hugging Face tokenizer uses in Rust
// (char::is_whitespace, char::is_numeric, regex \w).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ctm::text::detail {

// Byte length of the UTF-8 character starting with lead byte b (1 for a stray continuation byte).
inline size_t utf8_len(unsigned char b) {
  if (b < 0x80) return 1;
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  return 4;
}

// Decodes the (valid) character at s[i]; advances i.
inline uint32_t utf8_next(std::string_view s, size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const unsigned char b = p[0];
  if (b < 0x80) {
    i += 1;
    return b;
  }
  if (b < 0xE0) {
    i += 2;
    return ((b & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  }
  if (b < 0xF0) {
    i += 3;
    return ((b & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  }
  i += 4;
  return ((b & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

// The character that ends at s[end) (s valid UTF-8, end > 0); sets start to its first byte.
inline uint32_t utf8_prev(std::string_view s, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return utf8_next(s, i);
}

void utf8_append(std::string& out, uint32_t cp);

// Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and code points above
// U+10FFFF are invalid), or npos when all of s is valid.
size_t utf8_invalid_offset(std::string_view s);

bool is_white_space(uint32_t cp);  // Unicode White_Space (Rust char::is_whitespace, regex \s)
bool is_numeric(uint32_t cp);      // general category N* (Rust char::is_numeric)
bool is_word_char(uint32_t cp);    // Rust regex \w: letters, marks, Nd, Nl, Pc, ZWNJ/ZWJ

}  // namespace ctm::text::detail
