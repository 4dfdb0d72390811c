// Answer extraction and strip_string. The release is Python; each helper here names the Python expression it
// reproduces, because the labels depend on their exact corner cases (greedy regexes, rstrip, split counts).
#include "ctm/grade/extract.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <vector>

namespace ctm::grade {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_py_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
// Python's \w on str: ASCII letters, digits, '_', and (approximately) every non-ASCII character.
bool is_word(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

std::string remove_chars(std::string_view s, std::string_view chars_utf8) {
  // chars_utf8 holds whole UTF-8 sequences separated by nothing; remove each sequence.
  std::string out(s);
  size_t i = 0;
  while (i < chars_utf8.size()) {
    size_t len = 1;
    unsigned char c = static_cast<unsigned char>(chars_utf8[i]);
    if (c >= 0xF0)
      len = 4;
    else if (c >= 0xE0)
      len = 3;
    else if (c >= 0xC0)
      len = 2;
    replace_all(out, chars_utf8.substr(i, len), "");
    i += len;
  }
  return out;
}

// One match of -?\d*\.?\d+ starting exactly at i (Python backtracking semantics); returns its end or npos.
size_t number_match_at(std::string_view s, size_t i) {
  size_t j = i;
  if (j < s.size() && s[j] == '-') ++j;
  size_t k = j;
  while (k < s.size() && is_digit(s[k])) ++k;
  if (k + 1 < s.size() && s[k] == '.' && is_digit(s[k + 1])) {
    size_t m = k + 1;
    while (m < s.size() && is_digit(s[m])) ++m;
    return m;
  }
  if (k > j) return k;
  return std::string::npos;
}

std::vector<std::string> find_numbers(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t end = number_match_at(s, i);
    if (end == std::string::npos) {
      ++i;
      continue;
    }
    out.emplace_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

// re.sub(r"\\text{.*?}$", "", s).strip(), applied only when it leaves something and changes something.
void remove_trailing_text(std::string& s) {
  if (s.empty() || s.back() != '}') return;
  size_t p = s.find("\\text{");
  if (p == std::string::npos || p + 6 > s.size() - 1) return;
  std::string shorter = py_strip(std::string_view(s).substr(0, p));
  if (!shorter.empty() && shorter != s) s = shorter;
}

// re.sub(r"\\mbox{.*?}", "", s)
void remove_mbox(std::string& s) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t p = s.find("\\mbox{", pos);
    if (p == std::string::npos) break;
    size_t close = s.find('}', p + 6);
    if (close == std::string::npos) break;
    out.append(s, pos, p - pos);
    pos = close + 1;
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// re.sub(r"(\d+)\.0+([^\d])", r"\1\2", s) then re.sub(r"(\d+)\.0+$", r"\1", s)
void remove_zero_decimals(std::string& s) {
  auto pass = [](const std::string& in, bool at_end) {
    std::string out;
    size_t i = 0;
    while (i < in.size()) {
      if (is_digit(in[i])) {
        size_t k = i;
        while (k < in.size() && is_digit(in[k])) ++k;
        size_t m = k + 1;
        if (k < in.size() && in[k] == '.' && m < in.size() && in[m] == '0') {
          while (m < in.size() && in[m] == '0') ++m;
          if (!at_end && m < in.size() && !is_digit(in[m])) {
            out.append(in, i, k - i);
            out.push_back(in[m]);
            i = m + 1;
            continue;
          }
          if (at_end && m == in.size()) {
            out.append(in, i, k - i);
            i = m;
            continue;
          }
        }
        out.append(in, i, k - i);
        i = k;
        continue;
      }
      out.push_back(in[i++]);
    }
    return out;
  };
  s = pass(s, false);
  s = pass(s, true);
}

// re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", s)
std::string fix_sqrt(const std::string& s) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t p = s.find("\\sqrt", pos);
    if (p == std::string::npos) break;
    size_t q = p + 5;
    size_t e = q;
    while (e < s.size() && is_word(s[e])) ++e;
    out.append(s, pos, q - pos);
    if (e > q) {
      out += '{';
      out.append(s, q, e - q);
      out += '}';
    }
    pos = e;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::vector<std::string> py_split(const std::string& s, std::string_view sep) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(sep, pos);
    if (hit == std::string::npos) break;
    parts.push_back(s.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  parts.push_back(s.substr(pos));
  return parts;
}

// The MATH release's _fix_fracs: \frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}; gives up (returns the
// input) on a \frac with fewer than two characters after it.
std::string fix_fracs(const std::string& s) {
  std::vector<std::string> parts = py_split(s, "\\frac");
  std::string out = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& sub = parts[i];
    out += "\\frac";
    if (!sub.empty() && sub[0] == '{') {
      out += sub;
      continue;
    }
    if (sub.size() < 2) return s;
    char a = sub[0], b = sub[1];
    if (b != '{') {
      out += std::string("{") + a + "}{" + b + "}" + sub.substr(2);
    } else {
      out += std::string("{") + a + "}" + b + sub.substr(2);
    }
  }
  return out;
}

// Python int(x) == x round trip: an optional '-' then a canonical decimal integer.
bool is_canonical_int(const std::string& x) {
  size_t i = (!x.empty() && x[0] == '-') ? 1 : 0;
  if (i >= x.size()) return false;
  for (size_t k = i; k < x.size(); ++k)
    if (!is_digit(x[k])) return false;
  if (x[i] == '0' && x.size() - i > 1) return false;  // leading zero
  if (i == 1 && x == "-0") return false;              // int("-0") prints "0"
  return true;
}

// _fix_a_slash_b: "a/b" with integer a, b -> \frac{a}{b}
std::string fix_a_slash_b(const std::string& s) {
  std::vector<std::string> parts = py_split(s, "/");
  if (parts.size() != 2) return s;
  if (!is_canonical_int(parts[0]) || !is_canonical_int(parts[1])) return s;
  return "\\frac{" + parts[0] + "}{" + parts[1] + "}";
}

}  // namespace

std::string py_strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) ++b;
  while (e > b && is_py_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

std::string first_number(std::string_view s) {
  auto all = find_numbers(s);
  return all.empty() ? std::string() : all.front();
}

std::string last_number(std::string_view s) {
  auto all = find_numbers(s);
  return all.empty() ? std::string() : all.back();
}

std::optional<double> python_float(std::string_view raw) {
  std::string s = py_strip(raw);
  if (s.empty()) return std::nullopt;
  size_t i = 0;
  std::string clean;
  if (s[i] == '+' || s[i] == '-') clean += s[i++];
  std::string rest = s.substr(i);
  std::string lower;
  for (char c : rest) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "inf" || lower == "infinity") return clean == "-" ? -INFINITY : INFINITY;
  if (lower == "nan") return NAN;
  // digits with single '_' between digits, optional fraction, optional exponent
  auto digits = [&](size_t& p, std::string& out) {
    size_t start = p;
    while (p < s.size()) {
      if (is_digit(s[p])) {
        out += s[p++];
      } else if (s[p] == '_' && p > start && is_digit(s[p - 1]) && p + 1 < s.size() && is_digit(s[p + 1])) {
        ++p;
      } else {
        break;
      }
    }
    return p > start;
  };
  bool int_part = digits(i, clean);
  bool frac_part = false;
  if (i < s.size() && s[i] == '.') {
    clean += s[i++];
    frac_part = digits(i, clean);
  }
  if (!int_part && !frac_part) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    clean += s[i++];
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) clean += s[i++];
    if (!digits(i, clean)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return std::strtod(clean.c_str(), nullptr);
}

std::string cut_at_stop(std::string_view completion) {
  size_t cut = completion.size();
  for (std::string_view stop : {std::string_view("\n\nQuestion:"), std::string_view("\n\nProblem:")}) {
    size_t p = completion.find(stop);
    if (p != std::string_view::npos && p < cut) cut = p;
  }
  return std::string(completion.substr(0, cut));
}

std::string extract_gsm8k(std::string_view completion) {
  static constexpr std::string_view kDrop = "$€£,";
  std::string text = cut_at_stop(completion);
  std::string number;
  const std::string marker = "he answer is ";
  size_t first = text.find(marker);
  if (first != std::string::npos) {
    size_t start = first + marker.size();
    size_t second = text.find(marker, start);
    std::string segment =
        text.substr(start, second == std::string::npos ? std::string::npos : second - start);
    number = first_number(remove_chars(segment, kDrop));
  } else {
    number = last_number(remove_chars(text, kDrop));
  }
  for (char& c : number) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return number;
}

std::string extract_math(std::string_view completion) {
  std::string text = cut_at_stop(completion);
  std::string pred;
  bool found = false;
  size_t fa = text.find("Final Answer:");
  if (fa != std::string::npos) {
    std::string rest = text.substr(fa + 13);
    size_t hope = rest.find("I hope it is correct");
    if (hope != std::string::npos) rest.resize(hope);
    size_t a = rest.find('$'), b = rest.rfind('$');
    if (a != std::string::npos && b > a) {
      pred = rest.substr(a + 1, b - a - 1);
      found = true;
    }
  }
  if (!found) {
    size_t boxed = text.rfind("boxed");
    if (boxed != std::string::npos) {
      std::string ans = text.substr(boxed + 5);
      if (!ans.empty() && ans[0] == '{') {
        int depth = 1;
        size_t i = 1;
        for (; i < ans.size(); ++i) {
          if (ans[i] == '{') ++depth;
          if (ans[i] == '}' && --depth == 0) break;
        }
        pred = ans.substr(1, i - 1);
      } else {
        pred = py_strip(ans.substr(0, ans.find('$')));
      }
      found = true;
    }
  }
  if (!found) {
    size_t he = text.rfind("he answer is");
    if (he != std::string::npos) {
      pred = py_strip(std::string_view(text).substr(he + 12));
      found = true;
    }
  }
  if (!found) pred = last_number(remove_chars(text, "$,\\"));

  pred = pred.substr(0, pred.find('\n'));
  if (!pred.empty() && pred.front() == ':') pred.erase(0, 1);
  if (!pred.empty() && pred.back() == '.') pred.pop_back();
  if (!pred.empty() && pred.back() == '/') pred.pop_back();
  return strip_string(pred);
}

std::string strip_string(std::string s) {
  s = py_strip(s);
  replace_all(s, "\n", "");
  while (!s.empty() && s.back() == '.') s.pop_back();  // rstrip(".")
  replace_all(s, "\\!", "");
  replace_all(s, "\\ ", "");
  replace_all(s, "\\\\", "\\");
  replace_all(s, "\\\\", "\\");
  replace_all(s, "tfrac", "frac");
  replace_all(s, "dfrac", "frac");
  replace_all(s, "\\left", "");
  replace_all(s, "\\right", "");
  remove_trailing_text(s);
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  replace_all(s, "\\text", "");
  replace_all(s, "x\\in", "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  replace_all(s, " .", " 0.");
  replace_all(s, "{.", "{0.");
  replace_all(s, "\\cdot", "");
  replace_all(s, "infinity", "\\infty");
  if (s.find("\\infty") == std::string::npos) replace_all(s, "inf", "\\infty");
  replace_all(s, "+\\inity", "\\infty");
  replace_all(s, "and", "");
  replace_all(s, "\\mathbf", "");
  remove_mbox(s);
  if (s.find('j') != std::string::npos && s.find('i') == std::string::npos) replace_all(s, "j", "i");
  remove_zero_decimals(s);
  if (s.empty()) return s;
  if (s[0] == '.') s = "0" + s;
  {
    std::vector<std::string> sides = py_split(s, "=");
    if (sides.size() == 2 && sides[0].size() <= 2) s = sides[1];
  }
  s = fix_sqrt(s);
  replace_all(s, " ", "");
  s = fix_fracs(s);
  s = fix_a_slash_b(s);
  return s;
}

}  // namespace ctm::grade
