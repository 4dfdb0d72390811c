// JSONL in, JSONL out: see grade_file.hpp.
#include "ctm/grade/grade_file.hpp"

#include <cstdio>

#include "ctm/core/error.hpp"
#include "ctm/io/jsonl.hpp"

namespace ctm::grade {

GradeInput read_grade_input(const std::string& path, int64_t max_records) {
  GradeInput input;
  JsonlReader reader(path);
  Json record;
  while ((max_records < 0 || static_cast<int64_t>(input.records.size()) < max_records) &&
         reader.next(record)) {
    if (!record.is_object()) reader.fail(str("expected a JSON object, got ", record.type_name()));
    auto completion = record.find("completion");
    if (completion == record.end()) reader.fail("missing field \"completion\"");
    if (!completion->is_string())
      reader.fail(str("field \"completion\" must be a string, got ", completion->type_name()));
    auto answer = record.find("answer");
    if (answer == record.end()) reader.fail("missing field \"answer\"");
    if (!answer->is_array())
      reader.fail(str("field \"answer\" must be a list of strings, got ", answer->type_name()));
    std::vector<std::string> golds;
    for (size_t i = 0; i < answer->size(); ++i) {
      const Json& g = (*answer)[i];
      if (!g.is_string()) reader.fail(str("answer[", i, "] must be a string, got ", g.type_name()));
      golds.push_back(g.get<std::string>());
    }
    input.completions.push_back(completion->get<std::string>());
    input.golds.push_back(std::move(golds));
    input.records.push_back(std::move(record));
  }
  return input;
}

std::vector<Verdict> grade_records(Rules rules, GraderKind kind, const GradeInput& input, size_t first,
                                   size_t stride) {
  CTM_CHECK(stride > 0, "grade_records: stride must be positive");
  std::vector<Verdict> verdicts;
  for (size_t i = first; i < input.records.size(); i += stride)
    verdicts.push_back(grade(rules, kind, input.completions[i], input.golds[i]));
  return verdicts;
}

std::string GradeSummary::accuracy_line() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f",
                total > 0 ? static_cast<double>(correct) / static_cast<double>(total) : 0.0);
  return str("accuracy: ", buf, " (", correct, "/", total, ")");
}

GradeSummary write_grade_output(const std::string& path, const GradeInput& input,
                                const std::vector<Verdict>& verdicts) {
  CTM_CHECK(verdicts.size() == input.records.size(), "write_grade_output: ", verdicts.size(),
            " verdicts for ", input.records.size(), " records");
  GradeSummary summary;
  JsonlWriter writer(path);
  for (size_t i = 0; i < verdicts.size(); ++i) {
    Json out = input.records[i];
    out["extracted"] = verdicts[i].extracted;
    out["label"] = verdicts[i].correct;
    writer.write(out);
    summary.correct += verdicts[i].correct ? 1 : 0;
    summary.total += 1;
  }
  writer.commit();
  return summary;
}

}  // namespace ctm::grade
