// A recursive-descent reader of the LaTeX found in final answers, onto GiNaC (see the header).
#include "ctm/grade/latex_expr.hpp"

#include <cctype>
#include <cmath>
#include <complex>
#include <map>
#include <vector>

namespace ctm::grade {
namespace {

using GiNaC::ex;
using GiNaC::numeric;

struct ParseFail {};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}

constexpr long kMaxExponent = 100000;
constexpr long kMaxFactorial = 5000;

enum class Fn { Sin, Cos, Tan, Cot, Sec, Csc, Asin, Acos, Atan, Sinh, Cosh, Tanh, Log, Ln, Exp };

const std::map<std::string, Fn>& functions() {
  static const std::map<std::string, Fn> f = {
      {"sin", Fn::Sin},     {"cos", Fn::Cos},   {"tan", Fn::Tan},     {"cot", Fn::Cot},
      {"sec", Fn::Sec},     {"csc", Fn::Csc},   {"arcsin", Fn::Asin}, {"arccos", Fn::Acos},
      {"arctan", Fn::Atan}, {"sinh", Fn::Sinh}, {"cosh", Fn::Cosh},   {"tanh", Fn::Tanh},
      {"log", Fn::Log},     {"ln", Fn::Ln},     {"exp", Fn::Exp}};
  return f;
}

// Commands that stand for a value (Greek letters are symbols; \pi is the constant).
const std::vector<std::string>& greek() {
  static const std::vector<std::string> g = {
      "alpha",    "beta",    "gamma", "delta",  "epsilon", "varepsilon", "zeta",  "eta",   "theta",
      "vartheta", "iota",    "kappa", "lambda", "mu",      "nu",         "xi",    "rho",   "sigma",
      "tau",      "upsilon", "phi",   "varphi", "chi",     "psi",        "omega", "Gamma", "Delta",
      "Theta",    "Lambda",  "Xi",    "Sigma",  "Phi",     "Psi",        "Omega"};
  return g;
}

// Every command the parser understands, for splitting run-together names (strip_string removes spaces, so
// "\cot x" arrives as "\cotx" and "\pi r^2" as "\pir^2").
std::vector<std::string> known_commands() {
  std::vector<std::string> k = {"frac",  "sqrt", "pi",    "infty", "times", "div", "cdot",
                                "binom", "left", "right", "circ",  "le",    "ge"};
  for (const auto& [name, fn] : functions()) k.push_back(name);
  for (const auto& g : greek()) k.push_back(g);
  return k;
}

numeric decimal_to_rational(const std::string& lit) {
  size_t dot = lit.find('.');
  if (dot == std::string::npos) return numeric(lit.c_str());
  std::string digits = lit.substr(0, dot) + lit.substr(dot + 1);
  size_t frac_len = lit.size() - dot - 1;
  if (digits.empty()) digits = "0";
  std::string denom = "1" + std::string(frac_len, '0');
  return numeric(digits.c_str()) / numeric(denom.c_str());
}

class LatexParser {
 public:
  LatexParser(std::string_view s, SymbolTable& symbols) : s_(s), symbols_(symbols) {}

  ex parse_all() {
    ex e = expr();
    skip_space();
    if (pos_ != s_.size()) throw ParseFail{};
    return e;
  }

 private:
  void skip_space() {
    while (pos_ < s_.size()) {
      if (s_[pos_] == ' ') {
        ++pos_;
      } else if (s_.compare(pos_, 2, "\\,") == 0 || s_.compare(pos_, 2, "\\;") == 0 ||
                 s_.compare(pos_, 2, "\\:") == 0 || s_.compare(pos_, 2, "\\!") == 0) {
        pos_ += 2;
      } else if (s_.compare(pos_, 5, "\\left") == 0 && !(pos_ + 5 < s_.size() && is_alpha(s_[pos_ + 5]))) {
        pos_ += 5;
      } else if (s_.compare(pos_, 6, "\\right") == 0 && !(pos_ + 6 < s_.size() && is_alpha(s_[pos_ + 6]))) {
        pos_ += 6;
      } else {
        break;
      }
    }
  }
  bool at_end() {
    skip_space();
    return pos_ >= s_.size();
  }
  char peek() {
    skip_space();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  bool accept(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) throw ParseFail{};
  }
  // The command at pos_ (without '\'), split off a known prefix when letters run on; does not consume.
  std::string peek_command() {
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] != '\\') return "";
    size_t j = pos_ + 1;
    while (j < s_.size() && is_alpha(s_[j])) ++j;
    std::string name(s_.substr(pos_ + 1, j - pos_ - 1));
    if (name.empty()) return std::string(1, pos_ + 1 < s_.size() ? s_[pos_ + 1] : '\0');
    static const std::vector<std::string> known = known_commands();
    std::string best;
    for (const auto& k : known) {
      if (name == k) return name;
      if (name.compare(0, k.size(), k) == 0 && k.size() > best.size()) best = k;
    }
    return best.empty() ? name : best;
  }
  bool accept_command(const std::string& name) {
    if (peek_command() != name) return false;
    pos_ += 1 + name.size();
    return true;
  }

  ex expr() {
    ex e;
    if (accept('-'))
      e = -term();
    else {
      accept('+');
      e = term();
    }
    while (true) {
      if (accept('+'))
        e = e + term();
      else if (accept('-'))
        e = e - term();
      else
        return e;
    }
  }

  bool starts_primary() {
    char c = peek();
    if (is_digit(c) || is_alpha(c) || c == '(' || c == '{' || c == '.') return true;
    if (c == '\\') {
      std::string cmd = peek_command();
      if (cmd == "frac" || cmd == "sqrt" || cmd == "pi" || cmd == "infty" || cmd == "binom") return true;
      if (functions().count(cmd)) return true;
      for (const auto& g : greek())
        if (cmd == g) return true;
    }
    return false;
  }

  ex term() {
    ex e = unary();
    while (true) {
      if (accept('*') || accept_command("times") || accept_command("cdot")) {
        e = e * unary();
      } else if (accept('/') || accept_command("div")) {
        ex d = unary();
        if (d.is_zero()) throw ParseFail{};
        e = e / d;
      } else if (starts_primary()) {
        e = e * power();
      } else {
        return e;
      }
    }
  }

  ex unary() {
    if (accept('-')) return -unary();
    if (accept('+')) return unary();
    return power();
  }

  // The argument of ^ or of \frac/\sqrt without braces: a group, or a single character or command.
  ex small_arg() {
    char c = peek();
    if (c == '{') {
      ++pos_;
      ex e = expr();
      expect('}');
      return e;
    }
    if (is_digit(c)) {
      ++pos_;
      return numeric(c - '0');
    }
    if (c == '-') {
      ++pos_;
      return -small_arg();
    }
    return primary();
  }

  ex checked_pow(const ex& base, const ex& exponent) {
    if (GiNaC::is_a<numeric>(exponent)) {
      const numeric& n = GiNaC::ex_to<numeric>(exponent);
      if (n.is_real() && GiNaC::abs(n) > numeric(kMaxExponent)) throw ParseFail{};
    }
    return GiNaC::pow(base, exponent);
  }

  ex power() {
    ex base = postfix();
    if (accept('^')) return checked_pow(base, small_arg());
    return base;
  }

  ex postfix() {
    ex e = primary();
    while (accept('!')) {
      if (!GiNaC::is_a<numeric>(e) || !GiNaC::ex_to<numeric>(e).is_nonneg_integer()) throw ParseFail{};
      if (GiNaC::ex_to<numeric>(e) > numeric(kMaxFactorial)) throw ParseFail{};
      e = GiNaC::factorial(e);
    }
    return e;
  }

  ex symbol(const std::string& name) {
    auto it = symbols_.find(name);
    if (it == symbols_.end()) it = symbols_.emplace(name, GiNaC::symbol(name)).first;
    return it->second;
  }

  // "_1" or "_{12}" after a letter: part of the symbol's name.
  std::string subscript() {
    if (pos_ >= s_.size() || s_[pos_] != '_') return "";
    ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '{') {
      size_t close = s_.find('}', pos_);
      if (close == std::string_view::npos) throw ParseFail{};
      std::string sub(s_.substr(pos_ + 1, close - pos_ - 1));
      pos_ = close + 1;
      return "_" + sub;
    }
    if (pos_ < s_.size() && (is_alpha(s_[pos_]) || is_digit(s_[pos_]))) return std::string("_") + s_[pos_++];
    throw ParseFail{};
  }

  ex number() {
    size_t start = pos_;
    while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    if (pos_ + 1 < s_.size() && s_[pos_] == '.' && is_digit(s_[pos_ + 1])) {
      ++pos_;
      while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    }
    std::string lit(s_.substr(start, pos_ - start));
    if (pos_ < s_.size() && s_[pos_] == '_') throw ParseFail{};  // a base subscript: handled before parsing
    bool integer = lit.find('.') == std::string::npos;
    // Mixed number: an integer immediately followed by \frac{int}{int}.
    if (integer && s_.compare(pos_, 5, "\\frac") == 0) {
      size_t save = pos_;
      pos_ += 5;
      std::string a, b;
      if (read_int_group(a) && read_int_group(b) && b != "0")
        return numeric(lit.c_str()) + numeric(a.c_str()) / numeric(b.c_str());
      pos_ = save;
    }
    return decimal_to_rational(lit);
  }
  bool read_int_group(std::string& out) {
    if (pos_ >= s_.size() || s_[pos_] != '{') return false;
    size_t j = pos_ + 1;
    while (j < s_.size() && is_digit(s_[j])) ++j;
    if (j == pos_ + 1 || j >= s_.size() || s_[j] != '}') return false;
    out = std::string(s_.substr(pos_ + 1, j - pos_ - 1));
    pos_ = j + 1;
    return true;
  }

  ex function_call(Fn fn) {
    ex exponent = 1;
    ex log_base = 0;
    if (accept('^')) exponent = small_arg();
    if ((fn == Fn::Log) && peek() == '_') {
      ++pos_;
      log_base = small_arg();
    }
    ex arg;
    if (peek() == '(') {
      ++pos_;
      arg = expr();
      expect(')');
    } else {
      // \sin 2x: the argument runs over an implicit product
      arg = power();
      while (!at_end() && (is_digit(peek()) || is_alpha(peek()))) arg = arg * power();
    }
    ex value;
    switch (fn) {
      case Fn::Sin:
        value = GiNaC::sin(arg);
        break;
      case Fn::Cos:
        value = GiNaC::cos(arg);
        break;
      case Fn::Tan:
        value = GiNaC::tan(arg);
        break;
      case Fn::Cot:
        value = 1 / GiNaC::tan(arg);
        break;
      case Fn::Sec:
        value = 1 / GiNaC::cos(arg);
        break;
      case Fn::Csc:
        value = 1 / GiNaC::sin(arg);
        break;
      case Fn::Asin:
        value = GiNaC::asin(arg);
        break;
      case Fn::Acos:
        value = GiNaC::acos(arg);
        break;
      case Fn::Atan:
        value = GiNaC::atan(arg);
        break;
      case Fn::Sinh:
        value = GiNaC::sinh(arg);
        break;
      case Fn::Cosh:
        value = GiNaC::cosh(arg);
        break;
      case Fn::Tanh:
        value = GiNaC::tanh(arg);
        break;
      case Fn::Log:
        value = log_base.is_zero() ? GiNaC::log(arg) : GiNaC::log(arg) / GiNaC::log(log_base);
        break;
      case Fn::Ln:
        value = GiNaC::log(arg);
        break;
      case Fn::Exp:
        value = GiNaC::exp(arg);
        break;
    }
    return checked_pow(value, exponent);
  }

  ex primary() {
    char c = peek();
    if (c == '\0') throw ParseFail{};
    if (is_digit(c) || c == '.') return number();
    if (is_alpha(c)) {
      ++pos_;
      std::string name(1, c);
      std::string sub = subscript();
      if (name == "i" && sub.empty()) return GiNaC::I;
      return symbol(name + sub);
    }
    if (c == '(' || c == '{') {
      ++pos_;
      ex e = expr();
      expect(c == '(' ? ')' : '}');
      return e;
    }
    if (c == '|') {
      ++pos_;
      ex e = expr();
      expect('|');
      return GiNaC::abs(e);
    }
    if (c == '\\') {
      std::string cmd = peek_command();
      if (cmd.empty() || !is_alpha(cmd[0])) throw ParseFail{};
      pos_ += 1 + cmd.size();
      if (cmd == "frac") {
        ex num = small_arg();
        ex den = small_arg();
        if (den.is_zero()) throw ParseFail{};
        return num / den;
      }
      if (cmd == "binom") {
        ex n = small_arg(), k = small_arg();
        if (!GiNaC::is_a<numeric>(n) || !GiNaC::is_a<numeric>(k)) throw ParseFail{};
        if (GiNaC::abs(GiNaC::ex_to<numeric>(n)) > numeric(kMaxFactorial)) throw ParseFail{};
        return GiNaC::binomial(GiNaC::ex_to<numeric>(n), GiNaC::ex_to<numeric>(k));
      }
      if (cmd == "sqrt") {
        ex index = 2;
        if (accept('[')) {
          index = expr();
          expect(']');
        }
        ex radicand = small_arg();
        return index == 2 ? GiNaC::sqrt(radicand) : checked_pow(radicand, 1 / index);
      }
      if (cmd == "pi") return GiNaC::Pi;
      if (cmd == "infty") return symbol("\\infty");
      auto fn = functions().find(cmd);
      if (fn != functions().end()) return function_call(fn->second);
      for (const auto& g : greek())
        if (cmd == g) return symbol("\\" + g + subscript());
      throw ParseFail{};
    }
    throw ParseFail{};
  }

  std::string_view s_;
  size_t pos_ = 0;
  SymbolTable& symbols_;
};

// The value of e as a complex double, or nullopt when it is not a number.
std::optional<std::complex<double>> to_complex(const ex& e) {
  ex v = e.evalf();
  if (!GiNaC::is_a<numeric>(v)) return std::nullopt;
  const numeric& n = GiNaC::ex_to<numeric>(v);
  return std::complex<double>(GiNaC::real(n).to_double(), GiNaC::imag(n).to_double());
}

bool close(std::complex<double> a, std::complex<double> b) {
  double scale = std::max(std::abs(a), std::abs(b));
  if (!std::isfinite(scale)) return false;
  return std::abs(a - b) <= 1e-9 * std::max(scale, 1e-3);
}

// a and b have the same value at a point: exactly when their difference evaluates to a rational there (no
// tolerance can then hide a "+1" next to a huge power), else as complex doubles to 1e-9 relative.
bool same_value(const ex& a, const ex& b) {
  ex d = GiNaC::normal(a - b);
  if (GiNaC::is_a<numeric>(d) && GiNaC::ex_to<numeric>(d).is_rational()) return d.is_zero();
  auto va = to_complex(a), vb = to_complex(b);
  return va && vb && close(*va, *vb);
}

// a and b agree: directly when there are no symbols, else at several rational assignments of the symbols.
bool agree_numerically(const ex& a, const ex& b, const SymbolTable& symbols) {
  GiNaC::lst syms;
  for (const auto& [name, sym] : symbols)
    if (a.has(sym) || b.has(sym)) syms.append(sym);
  if (syms.nops() == 0) return same_value(a, b);
  int agreed = 0;
  for (int trial = 0; trial < 4; ++trial) {
    GiNaC::exmap point;
    for (size_t k = 0; k < syms.nops(); ++k)
      point[syms.op(k)] = numeric(7 + 13 * static_cast<long>(k) + 5 * trial, 11 + 3 * trial);
    try {
      if (!same_value(a.subs(point), b.subs(point))) return false;
      ++agreed;
    } catch (const std::exception&) {
      // a pole at this point: try the next
    }
  }
  return agreed >= 2;
}

}  // namespace

std::optional<ex> parse_latex_expr(std::string_view text, SymbolTable& symbols) {
  try {
    LatexParser parser(text, symbols);
    return parser.parse_all();
  } catch (const ParseFail&) {
    return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool latex_symbolic_equal(const std::string& a, const std::string& b) {
  SymbolTable symbols;
  auto ea = parse_latex_expr(a, symbols);
  auto eb = parse_latex_expr(b, symbols);
  if (!ea || !eb) return false;
  try {
    if (GiNaC::normal(GiNaC::expand(*ea - *eb)).is_zero()) return true;
  } catch (const std::exception&) {
  }
  try {
    return agree_numerically(*ea, *eb, symbols);
  } catch (const std::exception&) {
    return false;
  }
}

bool latex_equation_equal(const std::string& a, const std::string& b) {
  size_t ea = a.find('='), eb = b.find('=');
  if (ea == std::string::npos || eb == std::string::npos) return false;
  SymbolTable symbols;
  auto la = parse_latex_expr(a.substr(0, ea), symbols), ra = parse_latex_expr(a.substr(ea + 1), symbols);
  auto lb = parse_latex_expr(b.substr(0, eb), symbols), rb = parse_latex_expr(b.substr(eb + 1), symbols);
  if (!la || !ra || !lb || !rb) return false;
  ex da = GiNaC::expand(*la - *ra), db = GiNaC::expand(*lb - *rb);
  if (da.is_zero() || db.is_zero()) return da.is_zero() && db.is_zero();
  // Same equation iff da / db is a nonzero constant (free of every symbol).
  ex ratio = GiNaC::normal(da / db);
  for (const auto& [name, sym] : symbols)
    if (ratio.has(sym)) return false;
  auto v = to_complex(ratio);
  return v && std::abs(*v) > 1e-12;
}

}  // namespace ctm::grade
