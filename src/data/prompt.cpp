#include "ctm/data/prompt.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"

namespace ctm::data {

PromptFormat prompt_format(DatasetKind kind) {
  if (kind == DatasetKind::MATH) return {"Problem: ", "\nSolution: "};
  return {"Question: ", "\nAnswer: "};
}

std::string prompt_prefix_path(DatasetKind kind, const std::string& data_dir) {
  switch (kind) {
    case DatasetKind::GSM8K:
      return data_dir + "/prompts/gsm8k_8shot.txt";
    case DatasetKind::MATH:
      return data_dir + "/prompts/math_4shot.txt";
    case DatasetKind::ARITH:
      return data_dir + "/prompts/arith_4shot.txt";
  }
  throw Error("unknown dataset kind");
}

namespace {

bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Decodes the UTF-8 character of `len` bytes at p; returns U+FFFF (not a space) for a malformed sequence.
char32_t decode_utf8(const unsigned char* p, std::size_t len) {
  constexpr char32_t kBad = 0xFFFF;
  if (len == 1) return p[0] < 0x80 ? p[0] : kBad;
  char32_t c;
  if (len == 2 && (p[0] & 0xE0) == 0xC0) {
    c = p[0] & 0x1F;
  } else if (len == 3 && (p[0] & 0xF0) == 0xE0) {
    c = p[0] & 0x0F;
  } else if (len == 4 && (p[0] & 0xF8) == 0xF0) {
    c = p[0] & 0x07;
  } else {
    return kBad;
  }
  for (std::size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return kBad;
    c = (c << 6) | (p[i] & 0x3F);
  }
  return c;
}

std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;  // a stray continuation byte or an invalid lead: one non-space unit
}

}  // namespace

std::string python_strip(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t begin = 0, end = text.size();
  while (begin < end) {
    const std::size_t len = utf8_length(s[begin]);
    if (begin + len > end || !is_python_space(decode_utf8(s + begin, len))) break;
    begin += len;
  }
  while (end > begin) {
    // Step back to the lead byte of the last character (at most 3 continuation bytes).
    std::size_t start = end - 1;
    while (start > begin && end - start < 4 && (s[start] & 0xC0) == 0x80) --start;
    const std::size_t len = end - start;
    if (utf8_length(s[start]) != len || !is_python_space(decode_utf8(s + start, len))) break;
    end = start;
  }
  return std::string(text.substr(begin, end - begin));
}

PromptBuilder::PromptBuilder(DatasetKind kind, const std::string& data_dir)
    : format_(prompt_format(kind)), prefix_(read_file(prompt_prefix_path(kind, data_dir))) {}

std::string PromptBuilder::build(const std::string& question) const {
  return python_strip(framed(question));
}

std::string PromptBuilder::framed(const std::string& question) const {
  return prefix_ + format_.question_prefix + question + format_.answer_prefix;
}

std::string build_prompt(DatasetKind kind, const std::string& question, const std::string& data_dir) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const PromptBuilder>> cache;  // by prefix file path
  std::shared_ptr<const PromptBuilder> builder;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = cache[prompt_prefix_path(kind, data_dir)];
    if (!slot) slot = std::make_shared<const PromptBuilder>(kind, data_dir);
    builder = slot;
  }
  return builder->build(question);
}

std::vector<std::string> stop_strings(DatasetKind /*kind*/) {
  return {"\n\nQuestion:", ".\n\nQuestion:", "\n\nProblem:", ".\n\nProblem:"};
}

namespace {

constexpr double kNone = std::numeric_limits<double>::quiet_NaN();

struct TemperatureRow {
  const char* model;
  double gsm8k, math, arith;
};

// DESIGN.md §2 (the paper's release) and the embedded tiny model's ARITH value.
constexpr TemperatureRow kTemperatures[] = {
    {"Meta-Llama-3-8B", 0.5, 0.1, kNone},       {"Meta-Llama-3-70B", 0.85, 0.15, kNone},
    {"deepseek-math-7b-base", 1.0, 0.3, kNone}, {"Qwen2.5-7B", 0.9, 0.5, kNone},
    {"Qwen2.5-32B", 1.1, 0.7, kNone},           {"tiny", kNone, kNone, kArithTinyTemperature},
};

}  // namespace

double default_temperature(const std::string& model_name, DatasetKind kind) {
  for (const auto& row : kTemperatures) {
    if (model_name != row.model) continue;
    const double t = kind == DatasetKind::GSM8K  ? row.gsm8k
                     : kind == DatasetKind::MATH ? row.math
                                                 : row.arith;
    if (std::isnan(t))
      throw Error(str("no default temperature for model '", model_name, "' on ", dataset_name(kind),
                      " (DESIGN.md §2 table); give --t"));
    return t;
  }
  throw Error(
      str("no default temperature for model '", model_name,
          "' (known: Meta-Llama-3-8B, Meta-Llama-3-70B, deepseek-math-7b-base, Qwen2.5-7B, Qwen2.5-32B, "
          "tiny); give --t"));
}

grade::Rules grading_rules(DatasetKind kind) {
  return kind == DatasetKind::MATH ? grade::Rules::MATH : grade::Rules::GSM8K;
}

}  // namespace ctm::data
