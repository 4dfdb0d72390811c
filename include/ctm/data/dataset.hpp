// Datasets: which one a run uses, where its splits live and how a split's JSONL file is read into problems.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ctm::data {

enum class DatasetKind { GSM8K, MATH, ARITH };

// "GSM8K" | "MATH" | "ARITH"; ctm::Error naming the value otherwise.
DatasetKind parse_dataset(const std::string& name);
const char* dataset_name(DatasetKind kind);

struct Problem {
  std::string id;  // the record's "id" (a number becomes its decimal text), else its index
  std::string question;
  std::vector<std::string> answers;  // gold answers; any may match
  std::string solution;              // the worked solution where the file has one (else "")
};

// Reads a split. Two formats, detected per line:
// - openai (GSM8K's release): {"question", "answer": "worked solution\n#### N"}; gold = N with ',' removed,
//   solution = the text before "####" without trailing whitespace, id = the record's 0-based index.
// - the paper's: {"id", "question", "answer": [gold, ...], "response", "response_label"}; solution =
// "response"
//   when "response_label" is true (the MATH file's responses are model outputs, many of them wrong).
// Errors name the file and the line. max_items >= 0 keeps only the first max_items problems.
std::vector<Problem> load_problems(const std::string& jsonl_path, int64_t max_items = -1);

// data_dir is the project's data/ folder (tasks::data_dir()).
// GSM8K: ctm/GSM8K_test.jsonl; MATH: ctm/MATH_test.jsonl; ARITH: arith/test.jsonl.
std::string test_split_path(DatasetKind kind, const std::string& data_dir);
// GSM8K: gsm8k/train.jsonl; ARITH: arith/train.jsonl; MATH has none here (ctm::Error saying so).
std::string train_split_path(DatasetKind kind, const std::string& data_dir);

}  // namespace ctm::data
