// Regexes of tokenizer.json through PCRE2 with JIT. Hugging Face compiles them with Oniguruma; the few places
// where the two syntaxes mean different things (\s, \h, \uHHHH, ^ and $ at line ends) are rewritten, and
// matches are iterated with Oniguruma's rule for empty matches, so the splits are the same.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace ctm::text::detail {

// The PCRE2 spelling of an Oniguruma pattern. Throws ctm::Error (naming `where`) for constructs PCRE2 would
// read differently and that are not rewritten (nested classes, class intersections).
std::string onig_to_pcre2(std::string_view pattern, const std::string& where);

class Regex {
 public:
  // literal: match `pattern` as a plain string (a tokenizer.json {"String": ...} pattern).
  // any_bytes: subjects may be any bytes, not only UTF-8 (a decoder step after ByteFallback or ByteLevel):
  // a byte that is not part of a valid character is then matched by nothing, where PCRE2 would otherwise
  // read it as undefined behaviour.
  Regex(std::string_view pattern, bool literal, const std::string& where, bool any_bytes = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // The leftmost match in subject at or after `from`: false when there is none. Thread-safe.
  bool search(std::string_view subject, size_t from, size_t& match_start, size_t& match_end) const;

  // Calls on_match(start, end) for every match, in order, with Oniguruma's iteration: an empty match right
  // where the previous match ended is skipped by one character.
  template <class F>
  void for_each_match(std::string_view subject, F&& on_match) const {
    size_t from = 0, s = 0, e = 0;
    bool have_prev = false;
    size_t prev_end = 0;
    while (from <= subject.size() && search(subject, from, s, e)) {
      if (s == e && have_prev && prev_end == e) {
        from += from < subject.size() ? char_len(subject, from) : 1;
        continue;
      }
      from = e;
      have_prev = true;
      prev_end = e;
      on_match(s, e);
    }
  }

  const std::string& pattern() const { return pattern_; }
  bool literal() const { return literal_; }

 private:
  static size_t char_len(std::string_view s, size_t i);
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  bool literal_ = false;
  std::string pattern_;
  std::string where_;
};

}  // namespace ctm::text::detail
