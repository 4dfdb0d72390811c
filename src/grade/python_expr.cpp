// A recursive-descent parser of Python expression syntax with sympy's meaning, onto GiNaC (see the header).
#include "ctm/grade/python_expr.hpp"

#include <cctype>
#include <cmath>
#include <set>
#include <vector>

namespace ctm::grade {
namespace {

using GiNaC::ex;
using GiNaC::numeric;

struct ParseFail {};  // sympy would raise, or give something that is not an expression

enum class Tok { Int, Float, Imag, Name, Op, End };
struct Token {
  Tok kind;
  std::string text;
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// digits with single '_' between digits (Python literals); appends the digits without '_'
bool scan_digits(std::string_view s, size_t& i, std::string& out) {
  size_t start = i;
  while (i < s.size()) {
    if (is_digit(s[i])) {
      out += s[i++];
    } else if (s[i] == '_' && i > start && i + 1 < s.size() && is_digit(s[i + 1])) {
      ++i;
    } else {
      break;
    }
  }
  return i > start;
}

std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> toks;
  size_t i = 0;
  static const char* kOps3[] = {"**=", "//=", ">>=", "<<="};
  static const char* kOps2[] = {"**", "//", "<<", ">>", "<=", ">=", "==", "!=", "->", "+=", "-=", "*=", "/="};
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    if (is_digit(c) || (c == '.' && i + 1 < s.size() && is_digit(s[i + 1]))) {
      std::string lit;
      bool is_float = false;
      bool had_int = scan_digits(s, i, lit);
      if (i < s.size() && s[i] == '.') {
        is_float = true;
        lit += s[i++];
        scan_digits(s, i, lit);
      }
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        std::string exp = "e";
        if (j < s.size() && (s[j] == '+' || s[j] == '-')) exp += s[j++];
        if (scan_digits(s, j, exp)) {
          is_float = true;
          lit += exp;
          i = j;
        }
      }
      if (i < s.size() && (s[i] == 'j' || s[i] == 'J')) {
        ++i;
        toks.push_back({Tok::Imag, lit});
        continue;
      }
      if (!is_float && had_int && lit.size() > 1 && lit[0] == '0' &&
          lit.find_first_not_of('0') != std::string::npos)
        throw ParseFail{};  // Python 3: leading zeros in a decimal integer literal
      toks.push_back({is_float ? Tok::Float : Tok::Int, lit});
      continue;
    }
    if (is_name_start(c)) {
      size_t j = i;
      while (j < s.size() && is_name_char(s[j])) ++j;
      toks.push_back({Tok::Name, std::string(s.substr(i, j - i))});
      i = j;
      continue;
    }
    bool matched = false;
    for (const char* op : kOps3) {
      if (s.substr(i, 3) == op) throw ParseFail{};  // augmented assignment: a statement
    }
    for (const char* op : kOps2) {
      if (s.substr(i, 2) == op) {
        toks.push_back({Tok::Op, op});
        i += 2;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (std::string_view("+-*/%^&|~()<>!,").find(c) != std::string_view::npos) {
      toks.push_back({Tok::Op, std::string(1, c)});
      ++i;
      continue;
    }
    throw ParseFail{};  // backslash, braces, brackets, quotes, '=', '$', ...: not a sympy expression
  }
  toks.push_back({Tok::End, ""});
  return toks;
}

// Names that exist in sympy's namespace and are not plain expressions when used bare (functions, singletons).
const std::set<std::string>& bare_name_failures() {
  static const std::set<std::string> names = {
      "S",         "N",         "O",       "Q",         "oo",         "zoo",       "nan",       "sqrt",
      "exp",       "log",       "ln",      "sin",       "cos",        "tan",       "cot",       "sec",
      "csc",       "asin",      "acos",    "atan",      "sinh",       "cosh",      "tanh",      "asinh",
      "acosh",     "atanh",     "Abs",     "abs",       "factorial",  "binomial",  "Rational",  "Integer",
      "Float",     "gamma",     "beta",    "zeta",      "re",         "im",        "arg",       "sign",
      "floor",     "ceiling",   "Max",     "Min",       "max",        "min",       "sum",       "len",
      "int",       "float",     "round",   "pow",       "diff",       "solve",     "limit",     "integrate",
      "simplify",  "expand",    "factor",  "Symbol",    "Matrix",     "Eq",        "Function",  "li",
      "Li",        "Si",        "Ci",      "Ei",        "erf",        "exp_polar", "root",      "cbrt",
      "real_root", "Sum",       "Product", "Integral",  "Derivative", "Lambda",    "Piecewise", "Interval",
      "Union",     "FiniteSet", "true",    "false",     "True",       "False",     "None",      "range",
      "print",     "type",      "set",     "list",      "dict",       "tuple",     "str",       "divisors",
      "isprime",   "prime",     "gcd",     "lcm",       "mod",        "Mod",       "rf",        "ff",
      "catalan",   "fibonacci", "lucas",   "bernoulli", "euler",      "harmonic",  "primepi",   "totient",
      "var",       "symbols",   "plot",    "det",       "trace"};
  return names;
}

const std::set<std::string>& python_keywords() {
  static const std::set<std::string> kw = {
      "and",  "or",     "not",     "in",     "is",       "if",     "else",  "lambda",
      "for",  "while",  "def",     "class",  "return",   "import", "from",  "as",
      "with", "pass",   "del",     "global", "nonlocal", "assert", "yield", "raise",
      "try",  "except", "finally", "break",  "continue", "async",  "await"};
  return kw;
}

// Exponent and factorial sizes beyond which sympy would not finish in 1 s either (and GiNaC could eat
// memory).
constexpr long kMaxExponent = 100000;
constexpr long kMaxFactorial = 5000;

bool is_integer(const ex& e) {
  return GiNaC::is_a<numeric>(e) && GiNaC::ex_to<numeric>(e).is_integer();
}

long to_small_int(const ex& e) {
  if (!is_integer(e)) throw ParseFail{};
  const numeric& n = GiNaC::ex_to<numeric>(e);
  if (!n.is_pos_integer() && !n.is_zero() && !(-n).is_pos_integer()) throw ParseFail{};
  if (GiNaC::abs(n) > numeric(1L << 40)) throw ParseFail{};
  return n.to_long();
}

ex checked_power(const ex& base, const ex& exponent) {
  if (GiNaC::is_a<numeric>(exponent)) {
    const numeric& e = GiNaC::ex_to<numeric>(exponent);
    if (e.is_real() && GiNaC::abs(e) > numeric(kMaxExponent)) {
      bool trivial_base = base.is_zero() || (base - 1).is_zero() || (base + 1).is_zero();
      if (!trivial_base) throw ParseFail{};
    }
  }
  return GiNaC::pow(base, exponent);
}

ex python_floordiv(const ex& a, const ex& b) {
  long x = to_small_int(a), y = to_small_int(b);
  if (y == 0) throw ParseFail{};
  long q = x / y;
  if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
  return numeric(q);
}

ex python_mod(const ex& a, const ex& b) {
  long x = to_small_int(a), y = to_small_int(b);
  if (y == 0) throw ParseFail{};
  long r = x % y;
  if (r != 0 && ((r < 0) != (y < 0))) r += y;
  return numeric(r);
}

class PythonParser {
 public:
  PythonParser(std::vector<Token> toks, SymbolTable& symbols) : toks_(std::move(toks)), symbols_(symbols) {}

  ex parse_all() {
    ex e = comparison();
    if (peek().kind != Tok::End) throw ParseFail{};
    return e;
  }

 private:
  const Token& peek() const { return toks_[pos_]; }
  bool is_op(const char* op) const { return peek().kind == Tok::Op && peek().text == op; }
  bool accept(const char* op) {
    if (!is_op(op)) return false;
    ++pos_;
    return true;
  }

  ex comparison() {
    ex e = bit_or();
    for (const char* op : {"<", ">", "<=", ">=", "==", "!="})
      if (is_op(op)) throw ParseFail{};  // a relational, not an expression
    if (is_op(",")) throw ParseFail{};   // a tuple
    return e;
  }
  ex bit_or() {
    ex e = bit_xor();
    while (accept("|")) e = numeric(to_small_int(e) | to_small_int(bit_xor()));
    return e;
  }
  ex bit_xor() {
    ex e = bit_and();
    while (accept("^")) e = numeric(to_small_int(e) ^ to_small_int(bit_and()));
    return e;
  }
  ex bit_and() {
    ex e = shift();
    while (accept("&")) e = numeric(to_small_int(e) & to_small_int(shift()));
    return e;
  }
  ex shift() {
    ex e = arith();
    while (is_op("<<") || is_op(">>")) throw ParseFail{};
    return e;
  }
  ex arith() {
    ex e = term();
    while (true) {
      if (accept("+"))
        e = e + term();
      else if (accept("-"))
        e = e - term();
      else
        return e;
    }
  }
  ex term() {
    ex e = factor();
    while (true) {
      if (accept("*"))
        e = e * factor();
      else if (accept("/")) {
        ex d = factor();
        if (d.is_zero()) throw ParseFail{};  // sympy gives zoo, which never compares equal
        e = e / d;
      } else if (accept("//"))
        e = python_floordiv(e, factor());
      else if (accept("%"))
        e = python_mod(e, factor());
      else
        return e;
    }
  }
  ex factor() {
    if (accept("-")) return -factor();
    if (accept("+")) return factor();
    if (accept("~")) return numeric(~to_small_int(factor()));
    return power();
  }
  ex power() {
    ex base = postfix();
    if (accept("**")) return checked_power(base, factor());
    return base;
  }
  ex postfix() {
    ex e = atom();
    while (accept("!")) {
      if (is_op("!")) throw ParseFail{};  // '!!' is factorial2: not supported
      long n = to_small_int(e);
      if (n < 0 || n > kMaxFactorial) throw ParseFail{};
      e = GiNaC::factorial(numeric(n));
    }
    return e;
  }
  std::vector<ex> call_args() {
    std::vector<ex> args;
    if (accept(")")) return args;
    while (true) {
      args.push_back(bit_or());
      if (accept(")")) return args;
      if (!accept(",")) throw ParseFail{};
    }
  }
  ex call(const std::string& f, const std::vector<ex>& a) {
    auto one = [&]() -> const ex& {
      if (a.size() != 1) throw ParseFail{};
      return a[0];
    };
    if (f == "sqrt") return GiNaC::sqrt(one());
    if (f == "exp") return GiNaC::exp(one());
    if (f == "log" || f == "ln") {
      if (a.size() == 2) return GiNaC::log(a[0]) / GiNaC::log(a[1]);
      return GiNaC::log(one());
    }
    if (f == "sin") return GiNaC::sin(one());
    if (f == "cos") return GiNaC::cos(one());
    if (f == "tan") return GiNaC::tan(one());
    if (f == "cot") return 1 / GiNaC::tan(one());
    if (f == "sec") return 1 / GiNaC::cos(one());
    if (f == "csc") return 1 / GiNaC::sin(one());
    if (f == "asin") return GiNaC::asin(one());
    if (f == "acos") return GiNaC::acos(one());
    if (f == "atan") return GiNaC::atan(one());
    if (f == "sinh") return GiNaC::sinh(one());
    if (f == "cosh") return GiNaC::cosh(one());
    if (f == "tanh") return GiNaC::tanh(one());
    if (f == "Abs" || f == "abs") return GiNaC::abs(one());
    if (f == "factorial") {
      long n = to_small_int(one());
      if (n < 0 || n > kMaxFactorial) throw ParseFail{};
      return GiNaC::factorial(numeric(n));
    }
    if (f == "binomial" && a.size() == 2) {
      long n = to_small_int(a[0]), k = to_small_int(a[1]);
      if (n < 0 || n > kMaxFactorial) throw ParseFail{};
      return GiNaC::binomial(numeric(n), numeric(k));
    }
    if (f == "Rational" && a.size() == 2) {
      if (a[1].is_zero()) throw ParseFail{};
      return a[0] / a[1];
    }
    throw ParseFail{};  // calling a symbol, or a function this subset does not model
  }
  ex atom() {
    Token t = peek();
    ++pos_;
    switch (t.kind) {
      case Tok::Int:
        return numeric(t.text.c_str());
      case Tok::Float:
        return numeric(t.text.c_str()).evalf();
      case Tok::Imag: {
        bool fl = t.text.find_first_of(".eE") != std::string::npos;
        ex v = fl ? ex(numeric(t.text.c_str()).evalf()) : ex(numeric(t.text.c_str()));
        return v * GiNaC::I;
      }
      case Tok::Name: {
        if (python_keywords().count(t.text)) throw ParseFail{};
        if (accept("(")) return call(t.text, call_args());
        if (t.text == "pi") return GiNaC::Pi;
        if (t.text == "E") return GiNaC::exp(ex(1));
        if (t.text == "I") return GiNaC::I;
        if (bare_name_failures().count(t.text)) throw ParseFail{};
        auto it = symbols_.find(t.text);
        if (it == symbols_.end()) it = symbols_.emplace(t.text, GiNaC::symbol(t.text)).first;
        return it->second;
      }
      case Tok::Op:
        if (t.text == "(") {
          ex e = bit_or();
          if (!accept(")")) throw ParseFail{};  // a tuple, or unbalanced
          return e;
        }
        throw ParseFail{};
      case Tok::End:
        break;
    }
    throw ParseFail{};
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  SymbolTable& symbols_;
};

bool python_isclose(double a, double b, double rel_tol) {
  if (a == b) return true;
  if (std::isinf(a) || std::isinf(b)) return false;
  double diff = std::fabs(a - b);
  return diff <= rel_tol * std::fabs(b) || diff <= rel_tol * std::fabs(a);
}

}  // namespace

bool python_tokenizes(std::string_view text) {
  try {
    tokenize(text);
    return true;
  } catch (const ParseFail&) {
    return false;
  }
}

std::optional<ex> parse_python_expr(std::string_view text, SymbolTable& symbols) {
  try {
    PythonParser parser(tokenize(text), symbols);
    return parser.parse_all();
  } catch (const ParseFail&) {
    return std::nullopt;
  } catch (const std::exception&) {  // GiNaC errors while evaluating (pole, domain)
    return std::nullopt;
  }
}

bool python_symbolic_equal(const std::string& a, const std::string& b) {
  SymbolTable symbols;
  auto ea = parse_python_expr(a, symbols);
  auto eb = parse_python_expr(b, symbols);
  if (!ea || !eb) return false;
  try {
    if (GiNaC::normal(GiNaC::expand(*ea - *eb)).is_zero()) return true;
  } catch (const std::exception&) {
  }
  try {
    ex na = ea->evalf(), nb = eb->evalf();
    if (!GiNaC::is_a<numeric>(na) || !GiNaC::is_a<numeric>(nb)) return false;
    const numeric &xa = GiNaC::ex_to<numeric>(na), &xb = GiNaC::ex_to<numeric>(nb);
    if (!xa.is_real() || !xb.is_real()) return false;  // float() of a complex sympy number raises
    return python_isclose(xa.to_double(), xb.to_double(), 1e-3);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace ctm::grade
