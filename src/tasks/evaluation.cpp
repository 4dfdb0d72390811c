// ctm evaluation: accuracy on a test split (DESIGN.md §2 prompts, no BOS), graded with the paper or math
// grader. Writes {output_dir}/output/{model}/{dataset}/{base|lora-NAME}/result_{t}.jsonl (one line per
// question: id, question, answer, generation_result, generation_check) and summary_{t}.json beside it, and
// prints "Average Accuracy: xx.xx%" (correct samples over all samples). Ranks split the questions; every
// sample is seeded by (seed, question index, sample index), so the files do not depend on the rank count.
#include <filesystem>
#include <iostream>

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

namespace ctm::tasks {
namespace fs = std::filesystem;

void add_evaluation_options(po::options_description& desc) {
  add_engine_options(desc);
  desc.add_options()("grader", po::value<std::string>()->default_value("paper"),
                     "paper (the release's labels) | math (LaTeX + CAS)");
}

namespace {

// The folder of one evaluated model: the base, or the base with a LoRA adapter (named by its folder).
std::string result_dir(const CommonOptions& c, const std::string& model_dir) {
  const std::string model = model_label(c, model_dir);
  std::string variant = "base";
  if (!c.lora_path.empty()) {
    fs::path lora = fs::path(c.lora_path);
    if (lora.filename().empty()) lora = lora.parent_path();
    variant = "lora-" + lora.filename().string();
  }
  return output_path(c, "output/" + model + "/" + c.dataset_name + "/" + variant);
}

// "0", "0.5", "1.1": the temperature as the file name shows it.
std::string temperature_tag(double t) {
  return str(t);
}

}  // namespace

int run_evaluation(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("evaluation needs --dataset_name GSM8K|MATH|ARITH");
  const data::DatasetKind kind = data::parse_dataset(c.dataset_name);
  const grade::GraderKind grader = grade::parse_grader(ctx.vm["grader"].as<std::string>());
  const grade::Rules rules = data::grading_rules(kind);
  if (c.t < 0) throw UsageError(str("--t must be >= 0 (got ", c.t, ")"));
  const bool greedy = c.t < engine::kGreedyTemperature;
  const int64_t n = greedy ? 1 : c.sampling_n;
  if (n < 1) throw UsageError(str("--sampling_n must be >= 1 (got ", c.sampling_n, ")"));
  const int64_t max_new = max_new_tokens_option(ctx);
  const double top_p = top_p_option(ctx);

  const std::string split = data::test_split_path(kind, data_dir());
  const std::vector<data::Problem> problems = data::load_problems(split, c.max_questions);
  InferenceModel m = load_inference_model(c, ctx.comm);
  const data::PromptBuilder prompts(kind, data_dir());
  const std::vector<std::string> stops = data::stop_strings(kind);

  // Prompts of every question (cheap), so ranks can balance by length.
  const int64_t Q = static_cast<int64_t>(problems.size());
  std::vector<std::string> texts(Q);
  for (int64_t i = 0; i < Q; ++i) texts[i] = prompts.build(problems[i].question);
  const PromptBatch batch = encode_prompts(*m.tokenizer, texts, n);
  const std::vector<int64_t> mine = my_items(ctx, batch.costs);
  engine::SamplingParams params;
  params.n = n;
  params.temperature = greedy ? 0.0 : c.t;
  params.top_p = top_p;
  params.max_new_tokens = max_new;
  params.stop = stops;
  const std::vector<engine::Request> requests = make_requests(mine, batch.ids, c.seed, params);
  spdlog::info("evaluation: {} questions of {} ({} on this rank), t = {}, n = {}, model {}{}", Q, split,
               requests.size(), c.t, n, m.dir, c.lora_path.empty() ? "" : " + LoRA " + c.lora_path);

  engine::Engine eng(*m.model, *m.tokenizer, engine_options(ctx, "evaluation"));
  std::vector<std::pair<int64_t, Json>> records;
  int64_t correct_local = 0;
  for (const engine::RequestOutput& out : eng.generate(requests)) {
    const int64_t i = mine[out.index];
    const data::Problem& p = problems[i];
    Json results = Json::array(), checks = Json::array();
    for (const engine::Completion& comp : out.completions) {
      const grade::Verdict v = grade::grade(rules, grader, comp.text, p.answers);
      results.push_back(comp.text);
      checks.push_back(Json::array({comp.text, v.extracted, v.correct}));
      correct_local += v.correct ? 1 : 0;
    }
    Json rec = Json::object();
    rec["id"] = p.id;
    rec["question"] = p.question;
    rec["answer"] = p.answers;
    rec["generation_result"] = std::move(results);
    rec["generation_check"] = std::move(checks);
    records.emplace_back(i, std::move(rec));
  }
  const auto& st = eng.stats();
  double gen_tokens = static_cast<double>(st.generated_tokens), seconds = st.total_s;
  ctx.comm.allreduce_sum(&gen_tokens, 1);
  ctx.comm.allreduce_sum(&seconds, 1);
  const std::vector<Json> all = gather_records(ctx, records, Q);
  if (ctx.comm.rank() != 0) return 0;

  int64_t correct = 0, samples = 0;
  for (const Json& rec : all)
    for (const Json& check : rec["generation_check"]) {
      ++samples;
      correct += check[2].get<bool>() ? 1 : 0;
    }
  const double accuracy =
      samples > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(samples) : 0.0;
  const std::string dir = result_dir(c, m.dir);
  const std::string tag = temperature_tag(c.t);
  JsonlWriter writer(dir + "/result_" + tag + ".jsonl");
  for (const Json& rec : all) writer.write(rec);
  writer.commit();
  Json summary = Json::object();
  summary["task"] = "evaluation";
  summary["model_name"] = c.model_name;
  summary["model_path"] = m.dir;
  summary["lora_path"] = c.lora_path;
  summary["dataset_name"] = c.dataset_name;
  summary["split"] = split;
  summary["grader"] = grade::grader_name(grader);
  summary["t"] = c.t;
  summary["sampling_n"] = n;
  summary["top_p"] = top_p;
  summary["max_new_tokens"] = max_new;
  summary["seed"] = c.seed;
  summary["questions"] = Q;
  summary["samples"] = samples;
  summary["correct"] = correct;
  summary["accuracy"] = accuracy;
  summary["generated_tokens"] =
      static_cast<int64_t>(gen_tokens);  // (no timings: the files do not depend on ranks)
  write_json_file_atomic(dir + "/summary_" + tag + ".json", summary);
  spdlog::info(
      "wrote {}/result_{}.jsonl and summary_{}.json ({} tokens generated, {:.1f} s summed over {} ranks)",
      dir, tag, tag, static_cast<int64_t>(gen_tokens), seconds, ctx.comm.size());
  char line[64];
  std::snprintf(line, sizeof line, "Average Accuracy: %.2f%%", accuracy);
  std::cout << line << std::endl;
  return 0;
}

}  // namespace ctm::tasks
