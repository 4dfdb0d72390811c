#include "ctm/data/dataset.hpp"

#include "ctm/core/error.hpp"
#include "ctm/io/jsonl.hpp"

namespace ctm::data {

DatasetKind parse_dataset(const std::string& name) {
  if (name == "GSM8K") return DatasetKind::GSM8K;
  if (name == "MATH") return DatasetKind::MATH;
  if (name == "ARITH") return DatasetKind::ARITH;
  throw Error(str("unknown dataset '", name, "' (expected GSM8K, MATH or ARITH)"));
}

const char* dataset_name(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::GSM8K:
      return "GSM8K";
    case DatasetKind::MATH:
      return "MATH";
    case DatasetKind::ARITH:
      return "ARITH";
  }
  return "?";
}

namespace {

// A gold answer or an id may be written as a JSON string or a number.
std::string scalar_text(const Json& v, const JsonlReader& reader, const char* what) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer() || v.is_number_float()) return v.dump();
  reader.fail(str(what, " must be a string or a number, got ", v.type_name()));
}

std::string trim_right(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
    s.pop_back();
  return s;
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return trim_right(s.substr(first));
}

// openai format: "worked solution\n#### 1,234" -> gold "1234", solution "worked solution".
void parse_openai_answer(const std::string& answer, Problem& p, const JsonlReader& reader) {
  const auto mark = answer.rfind("####");
  if (mark == std::string::npos) reader.fail("\"answer\" has no final \"#### N\" line");
  std::string gold;
  for (char c : trim(answer.substr(mark + 4)))
    if (c != ',') gold += c;
  if (gold.empty()) reader.fail("\"answer\" has an empty value after \"####\"");
  p.answers = {gold};
  p.solution = trim_right(answer.substr(0, mark));
}

}  // namespace

std::vector<Problem> load_problems(const std::string& jsonl_path, int64_t max_items) {
  std::vector<Problem> problems;
  JsonlReader reader(jsonl_path);
  Json rec;
  while ((max_items < 0 || static_cast<int64_t>(problems.size()) < max_items) && reader.next(rec)) {
    if (!rec.is_object()) reader.fail(str("expected a JSON object, got ", rec.type_name()));
    Problem p;
    const auto q = rec.find("question");
    if (q == rec.end() || !q->is_string()) reader.fail("missing string field \"question\"");
    p.question = q->get<std::string>();
    const auto a = rec.find("answer");
    if (a == rec.end()) reader.fail("missing field \"answer\"");
    if (a->is_string()) {
      parse_openai_answer(a->get<std::string>(), p, reader);
    } else if (a->is_array()) {
      if (a->empty()) reader.fail("\"answer\" is an empty list");
      for (const auto& g : *a) p.answers.push_back(scalar_text(g, reader, "every \"answer\" item"));
      const auto label = rec.find("response_label");
      const auto response = rec.find("response");
      if (label != rec.end() && label->is_boolean() && label->get<bool>() && response != rec.end() &&
          response->is_string())
        p.solution = response->get<std::string>();
    } else {
      reader.fail(str("\"answer\" must be a string (\"... #### N\") or a list of gold answers, got ",
                      a->type_name()));
    }
    const auto id = rec.find("id");
    p.id = id != rec.end() ? scalar_text(*id, reader, "\"id\"") : std::to_string(problems.size());
    problems.push_back(std::move(p));
  }
  return problems;
}

std::string test_split_path(DatasetKind kind, const std::string& data_dir) {
  switch (kind) {
    case DatasetKind::GSM8K:
      return data_dir + "/ctm/GSM8K_test.jsonl";
    case DatasetKind::MATH:
      return data_dir + "/ctm/MATH_test.jsonl";
    case DatasetKind::ARITH:
      return data_dir + "/arith/test.jsonl";
  }
  throw Error("unknown dataset kind");
}

std::string train_split_path(DatasetKind kind, const std::string& data_dir) {
  switch (kind) {
    case DatasetKind::GSM8K:
      return data_dir + "/gsm8k/train.jsonl";
    case DatasetKind::ARITH:
      return data_dir + "/arith/train.jsonl";
    case DatasetKind::MATH:
      throw Error(str("MATH has no train split in ", data_dir,
                      " (only the MATH500 test file ships); use GSM8K or ARITH for training"));
  }
  throw Error("unknown dataset kind");
}

}  // namespace ctm::data
