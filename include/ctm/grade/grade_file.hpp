// Grading a JSONL file of completions (the `ctm grade` task's work, kept here so it is tested torch-free):
// each line has "completion" (string) and "answer" (list of gold strings); the output line is the input line
// plus "extracted" and "label".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/grade/grader.hpp"
#include "ctm/io/json.hpp"

namespace ctm::grade {

struct GradeInput {
  std::vector<Json> records;
  std::vector<std::string> completions;
  std::vector<std::vector<std::string>> golds;
};

// Reads and checks every line (first max_records when >= 0); errors name path:line and the field.
GradeInput read_grade_input(const std::string& path, int64_t max_records = -1);

// The verdicts of records first, first + stride, ... (ranks split the file this way).
std::vector<Verdict> grade_records(Rules rules, GraderKind kind, const GradeInput& input, size_t first = 0,
                                   size_t stride = 1);

struct GradeSummary {
  int64_t correct = 0;
  int64_t total = 0;
  std::string accuracy_line() const;  // "accuracy: 0.xxxx (k/n)"
};

// Writes every record plus "extracted" and "label" atomically; verdicts[i] belongs to input.records[i].
GradeSummary write_grade_output(const std::string& path, const GradeInput& input,
                                const std::vector<Verdict>& verdicts);

}  // namespace ctm::grade
