#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.hpp"

#include <pcre2.h>

#include "ctm/core/error.hpp"
#include "utf8.hpp"

namespace ctm::text::detail {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: one ovector pair is all we read, and a JIT stack big enough for long inputs.
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
    if (!data || !context || !jit_stack) throw Error("out of memory creating PCRE2 match data");
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

// Unicode White_Space, which is what Oniguruma's \s means (PCRE2's \s and \p{Xps} under UCP also take
// U+180E).
constexpr const char* kSpaceClassBody =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma's \h is a hexadecimal digit (PCRE2's is horizontal space).
constexpr const char* kHexClassBody = "0-9A-Fa-f";

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

std::string onig_to_pcre2(std::string_view p, const std::string& where) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  size_t class_start = 0;  // index in p just after '[' or '[^'
  size_t i = 0;
  auto unsupported = [&](const char* what) {
    throw Error(str(where, ": regex construct ", what, " is not supported (pattern ", p, ")"));
  };
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) unsupported("'\\' at the end");
      const char e = p[i + 1];
      if (e == 's') {
        out += in_class ? kSpaceClassBody : str("[", kSpaceClassBody, "]");
        i += 2;
      } else if (e == 'S') {
        // Inside a class PCRE2's \S is the closest spelling (it differs only on U+180E).
        out += in_class ? std::string("\\S") : str("[^", kSpaceClassBody, "]");
        i += 2;
      } else if (e == 'h') {
        out += in_class ? kHexClassBody : str("[", kHexClassBody, "]");
        i += 2;
      } else if (e == 'H') {
        if (in_class) unsupported("\\H inside a character class");
        out += str("[^", kHexClassBody, "]");
        i += 2;
      } else if (e == 'u' && i + 6 <= p.size() && is_hex(p[i + 2]) && is_hex(p[i + 3]) && is_hex(p[i + 4]) &&
                 is_hex(p[i + 5])) {
        out += str("\\x{", p.substr(i + 2, 4), "}");
        i += 6;
      } else {
        // Copy the escape and the whole (possibly multi-byte) escaped character.
        const size_t len = utf8_len(static_cast<unsigned char>(e));
        out += p.substr(i, 1 + len);
        i += 1 + len;
      }
      continue;
    }
    if (in_class) {
      if (c == ']' && i > class_start) {
        in_class = false;
      } else if (c == '[') {
        if (i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
          const size_t end = p.find(":]", i + 2);
          if (end == std::string_view::npos) unsupported("unterminated POSIX class");
          out += p.substr(i, end + 2 - i);
          i = end + 2;
          continue;
        }
        unsupported("nested character class");
      } else if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
        unsupported("character class intersection '&&'");
      }
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out.push_back(c);
      ++i;
      if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
      class_start = i;  // a ']' right here is a literal
      continue;
    }
    out.push_back(c);
    ++i;
  }
  if (in_class) unsupported("unterminated character class");
  return out;
}

Regex::Regex(std::string_view pattern, bool literal, const std::string& where, bool any_bytes)
    : literal_(literal), pattern_(pattern), where_(where) {
  uint32_t options = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (any_bytes ? PCRE2_MATCH_INVALID_UTF : 0);
  std::string compiled;
  if (literal) {
    options |= PCRE2_LITERAL;
    compiled = std::string(pattern);
  } else {
    // Oniguruma's ^ and $ match at line ends; '.' excludes only \n.
    options |= PCRE2_UCP | PCRE2_MULTILINE;
    compiled = onig_to_pcre2(pattern, where);
  }
  pcre2_compile_context* cctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(), options, &err,
                        &err_offset, cctx);
  pcre2_compile_context_free(cctx);
  if (!code_) {
    throw Error(
        str(where, ": cannot compile regex ", pattern, ": ", pcre2_message(err), " at offset ", err_offset));
  }
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  pcre2_code_free(code_);
}

size_t Regex::char_len(std::string_view s, size_t i) {
  const size_t len = utf8_len(static_cast<unsigned char>(s[i]));
  // A byte that does not begin a valid character (any_bytes subjects) is stepped over on its own.
  if (i + len > s.size() || utf8_invalid_offset(s.substr(i, len)) != std::string_view::npos) return 1;
  return len;
}

bool Regex::search(std::string_view subject, size_t from, size_t& match_start, size_t& match_end) const {
  MatchScratch& m = scratch();
  const auto* subj = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const int rc = jit_ ? pcre2_jit_match(code_, subj, subject.size(), from, 0, m.data, m.context)
                      : pcre2_match(code_, subj, subject.size(), from, PCRE2_NO_UTF_CHECK, m.data, m.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    throw Error(str(where_, ": regex ", pattern_, " failed on a text of ", subject.size(),
                    " bytes: ", pcre2_message(rc)));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.data);
  match_start = ov[0];
  match_end = ov[1];
  return true;
}

}  // namespace ctm::text::detail
