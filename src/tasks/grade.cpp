// ctm grade: labels a JSONL file of completions with the paper or the math grader (DESIGN.md §2 "Grading")
// and prints the accuracy last. Ranks split the lines (record i goes to rank i mod size); rank 0 gathers the
// verdicts and writes the output atomically.
#include <iostream>

#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/grade/grade_file.hpp"
#include "ctm/tasks/all.hpp"

namespace ctm::tasks {

void add_grade_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("grader", po::value<std::string>()->default_value("paper"), "paper (the release's labels) | math (LaTeX + CAS)")
    ("input", po::value<std::string>(), "JSONL with \"completion\" (string) and \"answer\" (list of golds) per line")
    ("output", po::value<std::string>(), "JSONL: each input line plus \"extracted\" and \"label\"");
  // clang-format on
}

int run_grade(const TaskContext& ctx) {
  if (ctx.common.dataset_name.empty()) throw UsageError("grade needs --dataset_name GSM8K|MATH|ARITH");
  if (!ctx.vm.count("input")) throw UsageError("grade needs --input FILE.jsonl");
  if (!ctx.vm.count("output")) throw UsageError("grade needs --output FILE.jsonl");
  const grade::Rules rules = grade::parse_rules(ctx.common.dataset_name);
  const grade::GraderKind kind = grade::parse_grader(ctx.vm["grader"].as<std::string>());
  const std::string input_path = ctx.vm["input"].as<std::string>();
  const std::string output_path = ctx.vm["output"].as<std::string>();

  const grade::GradeInput input = grade::read_grade_input(input_path, ctx.common.max_questions);
  const int rank = ctx.comm.rank(), size = ctx.comm.size();
  std::vector<grade::Verdict> mine = grade::grade_records(rules, kind, input, rank, size);
  Json packed = Json::array();
  for (const auto& v : mine) packed.push_back(Json::array({v.extracted, v.correct}));
  std::vector<std::string> all = ctx.comm.gather(packed.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (rank != 0) return 0;

  std::vector<grade::Verdict> verdicts(input.records.size());
  for (int r = 0; r < size; ++r) {
    Json part = parse_json(all[r], str("verdicts of rank ", r));
    for (size_t k = 0; k < part.size(); ++k) {
      size_t i = static_cast<size_t>(r) + k * static_cast<size_t>(size);
      verdicts[i] = {part[k][0].get<std::string>(), part[k][1].get<bool>()};
    }
  }
  grade::GradeSummary summary = grade::write_grade_output(output_path, input, verdicts);
  spdlog::info("graded {} lines of {} with the {} grader ({} rules) -> {}", summary.total, input_path,
               grade::grader_name(kind), rules == grade::Rules::GSM8K ? "GSM8K" : "MATH", output_path);
  std::cout << summary.accuracy_line() << std::endl;
  return 0;
}

}  // namespace ctm::tasks
