// ctm prepare_startup_data (DESIGN.md §2 "Data selection"): samples --sampling_n answers (default 64) to
// every question of the train split at the model's temperature, grades them, and selects the SFT positives
// and negatives and the DPO pairs. Writes under {output_dir}/data/{model}/, every name carrying the run tag
// (T1.00, plus .nN / .seedS when those are not the defaults) so runs with other settings never overwrite each
// other:
//   {dataset}.samples.{tag}.jsonl        one line per question: id, question, answer (gold list), responses
//                                        [{text, extracted, correct}];
//   {dataset}.samples.{tag}.config.json  the settings the samples were made and graded with (committed after
//                                        the samples, so it always describes them);
//   {dataset}.sft.{tag}.json             {"config", "pos": {id: {question, response, answer}}, "neg": {...}};
//   {dataset}.dpo_top_k1.{tag}.json      {"config", "prompt": [], "chosen": [], "rejected": [], "answer":
//   []}.
// Every question is journaled the moment its samples are graded (ResumableWork), so SIGTERM, a crash or kill
// -9 loses at most the questions in flight, and a rerun with any rank count goes on. A changed --grader
// regrades the samples; it does not sample again.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/data/selection.hpp"
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

void add_prepare_startup_data_options(po::options_description& desc) {
  add_engine_options(desc);
  add_dry_run_option(desc);
  desc.add_options()(
      "grader", po::value<std::string>()->default_value("paper"),
      "paper (the release's labels) | math (LaTeX + CAS); a change regrades, it does not resample");
}

namespace {

struct Run {
  data::DatasetKind kind;
  grade::GraderKind grader;
  std::string model_dir, model;
  engine::SamplingParams params;
  StartupDataPaths paths;
  Json settings;  // what the samples depend on (the grader and the question count aside)
};

Run resolve_run(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("prepare_startup_data needs --dataset_name GSM8K|MATH|ARITH");
  Run run;
  run.kind = data::parse_dataset(c.dataset_name);
  run.grader = grade::parse_grader(ctx.vm["grader"].as<std::string>());
  run.model_dir = resolve_model_path(c);
  run.model = model_label(c, run.model_dir);
  // --t and --sampling_n when given (command line or --config); else the paper's table and 64.
  const int64_t n = option_given(ctx, "sampling_n") ? c.sampling_n : kPaperSamples;
  run.params = paper_sampling_params(ctx, run.model, run.kind, n, "prepare_startup_data");
  const double t = run.params.temperature;
  run.paths = startup_data_paths(c, run.model, startup_tag(ctx, run.model));
  const std::string split = data::train_split_path(run.kind, data_dir());
  run.settings = {{"task", "prepare_startup_data"},
                  {"model_name", run.model},
                  {"model_path", run.model_dir},
                  {"lora_path", c.lora_path},
                  {"dataset_name", c.dataset_name},
                  {"split", split},
                  {"t", t},
                  {"sampling_n", n},
                  {"top_p", run.params.top_p},
                  {"max_new_tokens", run.params.max_new_tokens},
                  {"seed", c.seed}};
  return run;
}

// A journal record is about item i when it has the question's id and text and n responses.
std::string check_record(const data::Problem& p, int64_t n, const Json& rec) {
  if (!rec.is_object() || rec.value("id", Json()) != p.id || rec.value("question", Json()) != p.question)
    return "not this question (the split changed?)";
  if (!rec.contains("responses") || !rec["responses"].is_array() ||
      static_cast<int64_t>(rec["responses"].size()) != n)
    return str("not ", n, " responses");
  return "";
}

Json graded_responses(const Run& run, const std::vector<std::string>& texts,
                      const std::vector<std::string>& golds) {
  Json responses = Json::array();
  const grade::Rules rules = data::grading_rules(run.kind);
  for (const std::string& text : texts) {
    const grade::Verdict v = grade::grade(rules, run.grader, text, golds);
    responses.push_back(Json{{"text", text}, {"extracted", v.extracted}, {"correct", v.correct}});
  }
  return responses;
}

// The records of a complete earlier samples file with these settings, by question (null where absent), each
// marked with the grader it was graded with. Other settings under the same name: an error, never overwritten.
std::vector<Json> previous_samples(const Run& run, int64_t questions) {
  std::vector<Json> out;
  if (!file_exists(run.paths.samples)) return out;
  if (!file_exists(run.paths.samples_config)) {
    spdlog::warn("{} has no settings file beside it (a run stopped while committing?): not reused, replaced",
                 run.paths.samples);
    return out;
  }
  Json config = read_json_file(run.paths.samples_config);
  const std::string grader = config.value("grader", std::string());
  for (const char* key : {"grader", "questions", "ctm_version"}) config.erase(key);
  if (config != run.settings)
    throw Error(str(run.paths.samples, " was made with other settings; remove it (and ",
                    run.paths.samples_config, ") or use another --output_dir.",
                    settings_differences(run.settings, config)));
  const std::vector<Json> lines = read_jsonl(run.paths.samples, questions);
  for (const Json& line : lines) {
    out.push_back(line);
    out.back()["grader"] = grader;
  }
  return out;
}

// Summary counts of the selection.
struct Counts {
  int64_t samples = 0, correct = 0, positives = 0, negatives = 0, pairs = 0;
};

void write_outputs(const Run& run, const TaskContext& ctx, std::vector<Json>& records) {
  const CommonOptions& c = ctx.common;
  const int64_t Q = static_cast<int64_t>(records.size());
  std::vector<data::SampledQuestion> questions;
  std::vector<data::QuestionSelection> selections;
  Counts k;
  const std::string grader = grade::grader_name(run.grader);
  for (int64_t i = 0; i < Q; ++i) {
    Json& rec = records[i];
    data::SampledQuestion q;
    q.id = rec["id"].get<std::string>();
    q.question = rec["question"].get<std::string>();
    q.answers = rec["answer"].get<std::vector<std::string>>();
    if (rec.value("grader", std::string()) != grader) {  // graded with another grader: grade again
      std::vector<std::string> texts;
      for (const Json& r : rec["responses"]) texts.push_back(r["text"].get<std::string>());
      rec["responses"] = graded_responses(run, texts, q.answers);
    }
    rec.erase("grader");
    for (const Json& r : rec["responses"]) {
      q.responses.push_back(
          {r["text"].get<std::string>(), r["extracted"].get<std::string>(), r["correct"].get<bool>()});
      k.correct += q.responses.back().correct ? 1 : 0;
    }
    k.samples += static_cast<int64_t>(q.responses.size());
    selections.push_back(data::select_responses(q.responses, c.seed, static_cast<uint64_t>(i)));
    const data::QuestionSelection& s = selections.back();
    k.positives += s.positive >= 0 ? 1 : 0;
    k.negatives += static_cast<int64_t>(s.negatives.size());
    k.pairs += s.chosen >= 0 ? 1 : 0;
    questions.push_back(std::move(q));
  }
  Json config = run.settings;
  config["grader"] = grader;
  config["questions"] = Q;
  config["ctm_version"] = CTM_VERSION;
  {
    AtomicFile samples(run.paths.samples), samples_config(run.paths.samples_config);
    for (const Json& rec : records)
      samples.stream() << rec.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
    samples_config.stream() << config.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
    commit_together(samples, samples_config);
  }
  config["sft_pos"] = "top_k 1 of the largest correct answer group";
  config["sft_neg"] = "top_p 0.5 of the incorrect answer groups";
  write_json_file_atomic(run.paths.sft, data::build_sft_json(questions, selections, config));
  const data::PromptBuilder prompts(run.kind, data_dir());
  write_json_file_atomic(run.paths.dpo, data::build_dpo_json(questions, selections, prompts, config));
  char line[256];
  std::snprintf(line, sizeof line,
                "prepare_startup_data: %lld questions, %lld samples, accuracy %.2f%%, SFT pos %lld, SFT neg "
                "%lld, DPO pairs %lld",
                static_cast<long long>(Q), static_cast<long long>(k.samples),
                k.samples > 0 ? 100.0 * static_cast<double>(k.correct) / static_cast<double>(k.samples) : 0.0,
                static_cast<long long>(k.positives), static_cast<long long>(k.negatives),
                static_cast<long long>(k.pairs));
  std::cout << line << std::endl;
  spdlog::info("wrote {}, {} and {}", run.paths.samples, run.paths.sft, run.paths.dpo);
}

}  // namespace

int run_prepare_startup_data(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  const Run run = resolve_run(ctx);
  const std::string split = data::train_split_path(run.kind, data_dir());
  const std::vector<data::Problem> problems = data::load_problems(split, c.max_questions);
  const int64_t Q = static_cast<int64_t>(problems.size());
  for (const std::string& out : {run.paths.samples, run.paths.samples_config, run.paths.sft, run.paths.dpo})
    check_output_file(out);
  if (dry_run(ctx)) {
    Plan plan = sampling_plan(ctx, "prepare_startup_data", run.model_dir, run.kind, problems, run.params.n,
                              run.params.max_new_tokens, split);
    plan.add("sampling", str("t ", run.params.temperature, ", top_p ", run.params.top_p, ", seed ", c.seed));
    plan.add("outputs", str(run.paths.samples, " (+ .config.json), ", run.paths.sft, ", ", run.paths.dpo));
    plan.resume_state(run.paths.samples,
                      "reused if made with these settings (regraded for another --grader)");
    plan.print(ctx);
    return 0;
  }

  ResumableWork work(ctx, run.paths.samples, run.settings, Q, [&](int64_t i, const Json& rec) {
    return check_record(problems[i], run.params.n, rec);
  });
  work.recover(ctx.comm.rank() == 0 ? previous_samples(run, Q) : std::vector<Json>{});

  if (work.done_count() < Q) {
    InferenceModel m = load_inference_model(c, ctx.comm);
    const data::PromptBuilder prompts(run.kind, data_dir());
    std::vector<std::string> texts(Q);
    for (int64_t i = 0; i < Q; ++i) texts[i] = prompts.build(problems[i].question);
    const PromptBatch batch = encode_prompts(*m.tokenizer, texts, run.params.n);
    spdlog::info("prepare_startup_data: {} questions of {} ({} already sampled), t = {}, n = {}, model {}{}",
                 Q, split, work.done_count(), run.params.temperature, run.params.n, m.dir,
                 c.lora_path.empty() ? "" : " + LoRA " + c.lora_path);
    engine::Engine eng(*m.model, *m.tokenizer, engine_options(ctx, "prepare_startup_data"));
    const std::string grader = grade::grader_name(run.grader);
    sample_pending(
        ctx, eng, work, batch.costs,
        [&](int64_t i) { return make_request(i, batch.ids[i], c.seed, run.params); },
        [&](int64_t i, const engine::RequestOutput& out) {
          const data::Problem& p = problems[i];
          std::vector<std::string> completions;
          for (const engine::Completion& comp : out.completions) completions.push_back(comp.text);
          return Json{{"id", p.id},
                      {"question", p.question},
                      {"answer", p.answers},
                      {"responses", graded_responses(run, completions, p.answers)},
                      {"grader", grader}};
        },
        "questions");
  }
  if (ctx.comm.rank() == 0) {
    std::vector<Json> records = work.collect_all();
    write_outputs(run, ctx, records);
  }
  work.finish();
  return 0;
}

}  // namespace ctm::tasks
