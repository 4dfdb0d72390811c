// Prompts, stop strings, sampling temperatures and grading rules per dataset (DESIGN.md §2), ARITH included.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ctm/data/dataset.hpp"
#include "ctm/grade/grader.hpp"

namespace ctm::data {

// The sampling temperature of the tiny model on ARITH. The paper picks each model's temperature so that a
// question has about 10 incorrect answers of 64; this is the one constant to change when tiny is re-measured.
inline constexpr double kArithTinyTemperature = 1.0;

// How a question is framed: GSM8K and ARITH "Question: " q "\nAnswer: "; MATH "Problem: " q "\nSolution: ".
struct PromptFormat {
  std::string question_prefix;  // "Question: "
  std::string answer_prefix;    // "\nAnswer: "
};
PromptFormat prompt_format(DatasetKind kind);

// The few-shot prefix file: prompts/gsm8k_8shot.txt, prompts/math_4shot.txt, prompts/arith_4shot.txt.
std::string prompt_prefix_path(DatasetKind kind, const std::string& data_dir);

// Python's str.strip() with no argument: removes the characters for which str.isspace() is true (ASCII
// \t \n \v \f \r \x1c-\x1f and space, and U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F,
// U+205F, U+3000) from both ends of UTF-8 text. Invalid UTF-8 bytes count as non-space.
std::string python_strip(std::string_view text);

// A loaded few-shot prefix; build() is what the release sends to the model (cheap, thread-safe).
class PromptBuilder {
 public:
  PromptBuilder(DatasetKind kind, const std::string& data_dir);  // reads the prefix file
  // python_strip(framed(question)): ends in "Answer:" / "Solution:". What the model is sampled from.
  std::string build(const std::string& question) const;
  // prefix + question_prefix + question + answer_prefix, unstripped (ends in "Answer: "): the release's DPO
  // prompt, so that prompt + python_strip(response) is the sampled text.
  std::string framed(const std::string& question) const;
  const PromptFormat& format() const { return format_; }
  const std::string& prefix() const { return prefix_; }

 private:
  PromptFormat format_;
  std::string prefix_;
};

// The same, reading (and caching per file) the prefix.
std::string build_prompt(DatasetKind kind, const std::string& question, const std::string& data_dir);

// "\n\nQuestion:", ".\n\nQuestion:", "\n\nProblem:", ".\n\nProblem:" for every dataset, as the release (EOS
// also stops, which is the sampler's business).
std::vector<std::string> stop_strings(DatasetKind kind);

// DESIGN.md §2's table (chosen so that about 10 of 64 answers are incorrect) plus the ARITH column (tiny).
// ctm::Error naming the model and dataset when the table has no value (give --t then).
double default_temperature(const std::string& model_name, DatasetKind kind);

// ARITH is graded with the GSM8K rules.
grade::Rules grading_rules(DatasetKind kind);

}  // namespace ctm::data
