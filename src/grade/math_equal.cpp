// The `math` grader: structure first (text, matrices, unions, sets, tuples and intervals, lists, equations,
// numbers in a base), then plain numbers as exact rationals in-process, then GiNaC in the sandbox.
#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include "ctm/grade/equivalence.hpp"
#include "ctm/grade/extract.hpp"
#include "ctm/grade/latex_expr.hpp"

namespace ctm::grade {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}
bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

void erase_all(std::string& s, const std::string& what) {
  for (size_t p; (p = s.find(what)) != std::string::npos;) s.erase(p, what.size());
}

// +1 for an opening bracket, -1 for a closing one (any of (), [], {}: intervals mix them).
int bracket_delta(char c) {
  if (c == '(' || c == '[' || c == '{') return 1;
  if (c == ')' || c == ']' || c == '}') return -1;
  return 0;
}

// Splits at a separator outside (), [], {} (intervals mix them: "[2,5)" is depth 0 again at its end).
std::vector<std::string> split_top(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    int delta = bracket_delta(s[i]);
    depth += delta;
    if (delta == 0 && depth == 0 && s.compare(i, sep.size(), sep) == 0) {
      parts.push_back(s.substr(start, i - start));
      start = i + sep.size();
      i = start - 1;
    }
  }
  parts.push_back(s.substr(start));
  return parts;
}

// The text an answer spells, lower-cased, when it is words (\text{East}, {Navin}, (C)); nullopt otherwise.
std::optional<std::string> text_key(std::string s) {
  for (const char* macro : {"\\text", "\\textbf", "\\mathrm", "\\mbox", "\\textit"}) erase_all(s, macro);
  std::string key;
  for (char c : s) {
    if (c == '{' || c == '}' || c == '(' || c == ')' || c == ' ' || c == '~') continue;
    if (!is_alpha(c)) return std::nullopt;
    key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (key.empty()) return std::nullopt;
  return key;
}

// The outer brackets when s is one bracketed group "(...)", "[...)", ...: the opening and closing chars.
std::optional<std::pair<char, char>> enclosing_brackets(const std::string& s) {
  if (s.size() < 2 || (s.front() != '(' && s.front() != '[') || (s.back() != ')' && s.back() != ']'))
    return std::nullopt;
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    depth += bracket_delta(s[i]);
    if (depth == 0 && i + 1 < s.size()) return std::nullopt;
  }
  return std::make_pair(s.front(), s.back());
}

// a\pm b -> {a+b, a-b}; anything else -> {s}
std::vector<std::string> expand_pm(const std::string& s) {
  auto parts = split_top(s, "\\pm");
  if (parts.size() != 2) return {s};
  return {parts[0] + "+" + parts[1], parts[0] + "-(" + parts[1] + ")"};
}

std::vector<std::string> list_elements(const std::string& s) {
  std::vector<std::string> out;
  for (const auto& part : split_top(s, ","))
    for (auto& e : expand_pm(part)) out.push_back(e);
  return out;
}

// Exact rational of a plain number: -12, 3.25, \frac{3}{4}, -\frac{3}{4}, \frac{-3}{4}, 1\frac{4}{5}.
struct Rational {
  __int128 num, den;
};

std::optional<__int128> parse_int128(const std::string& s) {
  if (s.empty() || s.size() > 12) return std::nullopt;  // products stay inside __int128
  __int128 v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<Rational> parse_decimal(const std::string& s) {
  size_t dot = s.find('.');
  std::string int_part = s.substr(0, dot), frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (int_part.empty() && frac.empty()) return std::nullopt;
  if (dot != std::string::npos && frac.empty()) return std::nullopt;
  if (int_part.size() + frac.size() > 12) return std::nullopt;
  auto v = parse_int128(int_part.empty() ? "0" : int_part);
  if (!v) return std::nullopt;
  __int128 den = 1;
  for (char c : frac) {
    if (!is_digit(c)) return std::nullopt;
    *v = *v * 10 + (c - '0');
    den *= 10;
  }
  return Rational{*v, den};
}

std::optional<Rational> plain_number(std::string s) {
  bool negative = false;
  if (!s.empty() && s[0] == '-') {
    negative = true;
    s.erase(0, 1);
  }
  std::optional<Rational> r;
  size_t frac = s.find("\\frac{");
  if (frac == std::string::npos) {
    r = parse_decimal(s);
  } else {
    size_t mid = s.find("}{", frac);
    if (mid == std::string::npos || s.back() != '}') return std::nullopt;
    std::string whole = s.substr(0, frac);
    std::string a = s.substr(frac + 6, mid - frac - 6), b = s.substr(mid + 2, s.size() - mid - 3);
    bool neg_a = !a.empty() && a[0] == '-';
    if (neg_a) a.erase(0, 1);
    auto na = parse_int128(a), nb = parse_int128(b);
    if (!na || !nb || *nb == 0) return std::nullopt;
    __int128 w = 0;
    if (!whole.empty()) {
      auto nw = parse_int128(whole);
      if (!nw || neg_a) return std::nullopt;
      w = *nw;
    }
    r = Rational{w * *nb + (neg_a ? -*na : *na), *nb};
  }
  if (r && negative) r->num = -r->num;
  return r;
}

// "58,500" and "11,111,111,100": thousands separators, not a list.
bool is_thousands_number(const std::string& s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  size_t comma = s.find(',');
  if (comma == std::string::npos || comma == i || comma - i > 3) return false;
  size_t end = s.find('.');
  if (end == std::string::npos) end = s.size();
  for (size_t k = i; k < end; ++k) {
    bool should_be_comma = (end - k) % 4 == 0;
    if (should_be_comma != (s[k] == ',')) return false;
    if (!should_be_comma && !is_digit(s[k])) return false;
  }
  return true;
}

// "4343_6", "4210_{5}": digits in a base.
std::optional<std::pair<std::string, int>> base_number(const std::string& s) {
  size_t u = s.find('_');
  if (u == std::string::npos || u == 0) return std::nullopt;
  std::string digits = s.substr(0, u), base = s.substr(u + 1);
  if (base.size() > 2 && base.front() == '{' && base.back() == '}') base = base.substr(1, base.size() - 2);
  if (base.empty() || base.size() > 2 || !std::all_of(base.begin(), base.end(), is_digit))
    return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(),
                   [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  return std::make_pair(digits, std::stoi(base));
}

bool scalar_equal(const std::string& p, const std::string& g);
bool structure_equal(const std::string& p, const std::string& g);

bool unordered_equal(std::vector<std::string> p, const std::vector<std::string>& g) {
  if (p.size() != g.size()) return false;
  for (const auto& ge : g) {
    auto hit =
        std::find_if(p.begin(), p.end(), [&](const std::string& pe) { return structure_equal(pe, ge); });
    if (hit == p.end()) return false;
    p.erase(hit);
  }
  return true;
}

bool ordered_equal(const std::vector<std::string>& p, const std::vector<std::string>& g) {
  if (p.size() != g.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (!structure_equal(p[i], g[i])) return false;
  return true;
}

// Rows and cells of \begin{pmatrix}a&b\\c&d\end{pmatrix} (strip_string has turned "\\" into "\").
std::optional<std::vector<std::vector<std::string>>> matrix_cells(const std::string& s) {
  for (const char* kind : {"pmatrix", "bmatrix"}) {
    std::string open = std::string("\\begin{") + kind + "}", close = std::string("\\end{") + kind + "}";
    if (!starts_with(s, open) || !ends_with(s, close)) continue;
    std::string body = s.substr(open.size(), s.size() - open.size() - close.size());
    std::vector<std::vector<std::string>> rows;
    std::string row;
    auto flush = [&] {
      rows.push_back(split_top(row, "&"));
      row.clear();
    };
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '\\' && (i + 1 >= body.size() || !is_alpha(body[i + 1]))) {
        if (i + 1 < body.size() && body[i + 1] == '\\') ++i;
        flush();
      } else {
        row += body[i];
      }
    }
    if (!row.empty()) flush();
    return rows;
  }
  return std::nullopt;
}

bool structure_equal(const std::string& p, const std::string& g) {
  if (p == g) return true;
  if (p.empty() || g.empty()) return false;

  auto tp = text_key(p), tg = text_key(g);
  if (tp || tg) return tp && tg && *tp == *tg;

  auto mp = matrix_cells(p), mg = matrix_cells(g);
  if (mp || mg) {
    if (!mp || !mg || mp->size() != mg->size()) return false;
    for (size_t r = 0; r < mp->size(); ++r)
      if (!ordered_equal((*mp)[r], (*mg)[r])) return false;
    return true;
  }

  auto up = split_top(p, "\\cup"), ug = split_top(g, "\\cup");
  if (up.size() > 1 || ug.size() > 1) return ordered_equal(up, ug);

  auto set_body = [](const std::string& s) -> std::optional<std::string> {
    if (starts_with(s, "\\{") && ends_with(s, "\\}") && s.size() >= 4) return s.substr(2, s.size() - 4);
    return std::nullopt;
  };
  auto sp = set_body(p), sg = set_body(g);
  if (sp || sg) return unordered_equal(list_elements(sp ? *sp : p), list_elements(sg ? *sg : g));

  bool p_thousands = is_thousands_number(p), g_thousands = is_thousands_number(g);
  if (p_thousands || g_thousands) {
    std::string pc = p, gc = g;
    erase_all(pc, ",");
    erase_all(gc, ",");
    return structure_equal(p_thousands ? pc : p, g_thousands ? gc : g);
  }

  // Tuples and intervals: brackets must agree, elements in order.
  auto bp = enclosing_brackets(p), bg = enclosing_brackets(g);
  auto ep = bp ? split_top(p.substr(1, p.size() - 2), ",") : std::vector<std::string>{};
  auto eg = bg ? split_top(g.substr(1, g.size() - 2), ",") : std::vector<std::string>{};
  bool p_tuple = bp && ep.size() > 1, g_tuple = bg && eg.size() > 1;
  if (p_tuple || g_tuple) {
    if (p_tuple && g_tuple) return *bp == *bg && ordered_equal(ep, eg);
    // a bare list against a tuple: compare in order
    auto bare = split_top(p_tuple ? g : p, ",");
    return bare.size() > 1 && ordered_equal(p_tuple ? ep : bare, p_tuple ? bare : eg);
  }

  // Lists of solutions ("1,-2", "3\pm2\sqrt{2}"): order does not matter.
  auto lp = list_elements(p), lg = list_elements(g);
  if (lp.size() > 1 || lg.size() > 1) return unordered_equal(lp, lg);

  // Equations: the same equation up to a constant factor, or "x=5" against "5".
  auto eqp = split_top(p, "="), eqg = split_top(g, "=");
  if (eqp.size() == 2 && eqg.size() == 2) return sandboxed_symbolic("math-eq", p, g, &latex_equation_equal);
  auto short_lhs = [](const std::string& lhs) {
    return !lhs.empty() && lhs.size() <= 2 && is_alpha(lhs[0]) &&
           std::all_of(lhs.begin(), lhs.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
  };
  if (eqp.size() == 2 && eqg.size() == 1 && short_lhs(eqp[0])) return structure_equal(eqp[1], g);
  if (eqg.size() == 2 && eqp.size() == 1 && short_lhs(eqg[0])) return structure_equal(p, eqg[1]);
  if (eqp.size() > 1 || eqg.size() > 1) return false;

  auto np = base_number(p), ng = base_number(g);
  if (np || ng) {
    if (np && ng) return np->second == ng->second && scalar_equal(np->first, ng->first);
    // "4343" against "4343_6": the digits as written in the base.
    return (np ? np->first : p) == (ng ? ng->first : g);
  }
  return scalar_equal(p, g);
}

bool scalar_equal(const std::string& p, const std::string& g) {
  if (p == g) return true;
  auto rp = plain_number(p), rg = plain_number(g);
  if (rp && rg) return rp->num * rg->den == rg->num * rp->den;
  return sandboxed_symbolic("math", p, g, &latex_symbolic_equal);
}

}  // namespace

bool math_equal(const std::string& pred, const std::string& gold) {
  std::string p = strip_string(pred), g = strip_string(gold);
  // strip_string removes LaTeX degrees (^\circ) but not the Unicode sign models also write.
  erase_all(p, "\u00b0");
  erase_all(g, "\u00b0");
  if (p.empty()) return false;
  if (p == g || pred == gold) return true;
  return structure_equal(p, g);
}

}  // namespace ctm::grade
