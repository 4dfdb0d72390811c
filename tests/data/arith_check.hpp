// Test helpers that read ARITH text back without the generator: the "a op b = c" equations of a solution and
// its final "The answer is N." (plain string scanning: GCC 12 warns falsely inside <regex> at -O1).
#pragma once

#include <cctype>
#include <sstream>
#include <string>
#include <vector>

namespace ctm::data::testing_helpers {

struct Equation {
  long a, b, c;
  char op;
};

inline bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char ch : s)
    if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
  return true;
}

// Every "a op b = c" (op one of + - * /) among the space-separated words of text; c may end in '.' or ','.
inline std::vector<Equation> find_equations(const std::string& text) {
  std::vector<std::string> w;
  std::istringstream in(text);
  for (std::string word; in >> word;) w.push_back(word);
  std::vector<Equation> out;
  for (std::size_t i = 0; i + 4 < w.size(); ++i) {
    std::string c = w[i + 4];
    while (!c.empty() && (c.back() == '.' || c.back() == ',')) c.pop_back();
    if (all_digits(w[i]) && w[i + 1].size() == 1 &&
        std::string("+-*/").find(w[i + 1][0]) != std::string::npos && all_digits(w[i + 2]) &&
        w[i + 3] == "=" && all_digits(c))
      out.push_back({std::stol(w[i]), std::stol(w[i + 2]), std::stol(c), w[i + 1][0]});
  }
  return out;
}

// The first whole number at or after pos (-1 if none).
inline long number_after(const std::string& s, std::size_t pos) {
  while (pos < s.size() && !std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
  if (pos >= s.size()) return -1;
  std::size_t end = pos;
  while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
  return std::stol(s.substr(pos, end - pos));
}

// N of a final "The answer is N." (-1 if the text does not end that way).
inline long final_answer(const std::string& text) {
  const std::string mark = "The answer is ";
  const auto at = text.rfind(mark);
  if (at == std::string::npos || text.empty() || text.back() != '.') return -1;
  const std::string n = text.substr(at + mark.size(), text.size() - 1 - at - mark.size());
  return all_digits(n) ? std::stol(n) : -1;
}

}  // namespace ctm::data::testing_helpers
