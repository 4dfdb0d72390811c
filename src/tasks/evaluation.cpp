// ctm evaluation: accuracy on a test split (DESIGN.md §2 prompts, no BOS), graded with the paper or math
// grader. Writes {output_dir}/output/{model}/{dataset}/{base|lora-NAME}/result_{t}.jsonl (one line per
// question: id, question, answer, generation_result, generation_check) and summary_{t}.json beside it (".nN"
// /
// ".seedS" join the t when they are not 1 / 42), and prints "Average Accuracy: xx.xx%" (correct samples over
// all samples). Questions are journaled as they finish (ResumableWork): SIGTERM keeps them and a rerun goes
// on. Ranks split the questions; every sample is seeded by (seed, question index, sample index), so the files
// do not depend on the rank count.
#include <filesystem>
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/engine/sampler.hpp"
#include "ctm/grade/grader.hpp"
#include "ctm/io/json.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/plan.hpp"
#include "ctm/tasks/resumable.hpp"

namespace ctm::tasks {
namespace fs = std::filesystem;

void add_evaluation_options(po::options_description& desc) {
  add_engine_options(desc);
  add_dry_run_option(desc);
  desc.add_options()("grader", po::value<std::string>()->default_value("paper"),
                     "paper (the release's labels) | math (LaTeX + CAS)");
}

namespace {

Json graded_record(const data::Problem& p, const std::vector<std::string>& texts, grade::Rules rules,
                   grade::GraderKind grader) {
  Json results = Json::array(), checks = Json::array();
  for (const std::string& text : texts) {
    const grade::Verdict v = grade::grade(rules, grader, text, p.answers);
    results.push_back(text);
    checks.push_back(Json::array({text, v.extracted, v.correct}));
  }
  return Json{{"id", p.id},
              {"question", p.question},
              {"answer", p.answers},
              {"generation_result", std::move(results)},
              {"generation_check", std::move(checks)},
              {"grader", grade::grader_name(grader)}};
}

// The records of a complete earlier result file with these settings (its summary says so), by question, each
// marked with the grader it was graded with; nothing when there is none. Other settings under the same name:
// an error, never overwritten.
std::vector<Json> previous_results(const EvaluationPaths& paths, const Json& settings, int64_t questions) {
  if (!file_exists(paths.summary) || !file_exists(paths.result)) return {};
  Json summary = read_json_file(paths.summary);
  const std::string grader = summary.value("grader", std::string());
  Json earlier = Json::object();
  for (const auto& kv : settings.items()) earlier[kv.key()] = summary.value(kv.key(), Json());
  if (earlier != settings)
    throw Error(str(paths.result, " was made with other settings; remove it (and ", paths.summary,
                    ") or use another --output_dir.", settings_differences(settings, earlier)));
  std::vector<Json> out = read_jsonl(paths.result, questions);
  for (Json& rec : out) rec["grader"] = grader;
  return out;
}

}  // namespace

int run_evaluation(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("evaluation needs --dataset_name GSM8K|MATH|ARITH");
  const data::DatasetKind kind = data::parse_dataset(c.dataset_name);
  const grade::GraderKind grader = grade::parse_grader(ctx.vm["grader"].as<std::string>());
  const grade::Rules rules = data::grading_rules(kind);
  const bool greedy = c.t < engine::kGreedyTemperature;
  engine::SamplingParams params;
  params.n = greedy ? 1 : c.sampling_n;
  params.temperature = greedy ? 0.0 : c.t;
  params.top_p = top_p_option(ctx);
  params.max_new_tokens = max_new_tokens_option(ctx);
  params.stop = data::stop_strings(kind);

  const std::string split = data::test_split_path(kind, data_dir());
  const std::vector<data::Problem> problems = data::load_problems(split, c.max_questions);
  const int64_t Q = static_cast<int64_t>(problems.size());
  const std::string model_dir = resolve_model_path(c);
  const EvaluationPaths paths = evaluation_paths(c, model_dir, params.n);
  const std::string &result_path = paths.result, &summary_path = paths.summary;
  check_output_file(result_path);
  check_output_file(summary_path);

  const Json settings = {{"task", "evaluation"},
                         {"model_name", c.model_name},
                         {"model_path", model_dir},
                         {"lora_path", c.lora_path},
                         {"dataset_name", c.dataset_name},
                         {"split", split},
                         {"t", c.t},
                         {"sampling_n", params.n},
                         {"top_p", params.top_p},
                         {"max_new_tokens", params.max_new_tokens},
                         {"seed", c.seed}};
  if (dry_run(ctx)) {
    Plan plan =
        sampling_plan(ctx, "evaluation", model_dir, kind, problems, params.n, params.max_new_tokens, split);
    plan.add("outputs", str(result_path, ", ", summary_path));
    plan.resume_state(result_path, "reused if made with these settings (regraded for another --grader)");
    plan.print(ctx);
    return 0;
  }
  ResumableWork work(ctx, result_path, settings, Q, [&](int64_t i, const Json& rec) -> std::string {
    if (!rec.is_object() || rec.value("id", Json()) != problems[i].id) return "not this question";
    if (!rec.contains("generation_result") ||
        rec["generation_result"].size() != static_cast<size_t>(params.n))
      return str("not ", params.n, " samples");
    return "";
  });
  work.recover(ctx.comm.rank() == 0 ? previous_results(paths, settings, Q) : std::vector<Json>{});

  if (work.done_count() < Q) {
    InferenceModel m = load_inference_model(c, ctx.comm);
    const data::PromptBuilder prompts(kind, data_dir());
    std::vector<std::string> texts(Q);
    for (int64_t i = 0; i < Q; ++i) texts[i] = prompts.build(problems[i].question);
    const PromptBatch batch = encode_prompts(*m.tokenizer, texts, params.n);
    spdlog::info("evaluation: {} questions of {} ({} already done), t = {}, n = {}, model {}{}", Q, split,
                 work.done_count(), c.t, params.n, m.dir,
                 c.lora_path.empty() ? "" : " + LoRA " + c.lora_path);
    engine::Engine eng(*m.model, *m.tokenizer, engine_options(ctx, "evaluation"));
    sample_pending(
        ctx, eng, work, batch.costs, [&](int64_t i) { return make_request(i, batch.ids[i], c.seed, params); },
        [&](int64_t i, const engine::RequestOutput& out) {
          std::vector<std::string> completions;
          for (const engine::Completion& comp : out.completions) completions.push_back(comp.text);
          return graded_record(problems[i], completions, rules, grader);
        },
        "questions");
  }
  if (ctx.comm.rank() == 0) {
    int64_t correct = 0, samples = 0;
    AtomicFile results(result_path), summary_file(summary_path);
    std::vector<Json> records = work.collect_all();
    for (int64_t i = 0; i < Q; ++i) {
      Json& rec = records[i];
      if (rec.value("grader", std::string()) != grade::grader_name(grader))
        rec = graded_record(problems[i], rec["generation_result"].get<std::vector<std::string>>(), rules,
                            grader);
      rec.erase("grader");
      for (const Json& check : rec["generation_check"]) {
        ++samples;
        correct += check[2].get<bool>() ? 1 : 0;
      }
      results.stream() << rec.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
    }
    const double accuracy =
        samples > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(samples) : 0.0;
    Json summary = settings;
    summary["grader"] = grade::grader_name(grader);
    summary["questions"] = Q;
    summary["samples"] = samples;
    summary["correct"] = correct;
    summary["accuracy"] = accuracy;
    summary_file.stream() << summary.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
    commit_together(results, summary_file);
    spdlog::info("wrote {} and {}", result_path, summary_path);
    char line[64];
    std::snprintf(line, sizeof line, "Average Accuracy: %.2f%%", accuracy);
    std::cout << line << std::endl;
  }
  work.finish();
  return 0;
}

}  // namespace ctm::tasks
