// ctm prepare_startup_data (DESIGN.md §2 "Data selection"): samples --sampling_n answers (default 64) to
// every question of the train split at the model's temperature, grades them, and selects the SFT positives
// and negatives and the DPO pairs. Writes under {output_dir}/data/{model}/:
//   {dataset}.samples.jsonl  one line per question: id, question, answer (gold list), responses [{text,
//                            extracted, correct}]; written in chunks of --chunk_questions to
//                            {dataset}.samples.partial.jsonl first, so a rerun after SIGTERM or a crash goes
//                            on from the questions already done ({dataset}.samples.config.json holds the
//                            sampling settings they were made with; other settings start again);
//   {dataset}.sft.json       {"config", "pos": {id: {question, response, answer}}, "neg": {id_k: {...}}};
//   {dataset}.dpo.json       {"config", "prompt": [], "chosen": [], "rejected": [], "answer": []}.
// Ranks split the questions of each chunk; every sample is seeded by (seed, question index, sample index), so
// the files do not depend on the rank count.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"
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

namespace ctm::tasks {
namespace fs = std::filesystem;

// The paper samples 64 answers per question for data selection.
constexpr int kStartupSamples = 64;

void add_prepare_startup_data_options(po::options_description& desc) {
  add_engine_options(desc);
  // clang-format off
  desc.add_options()
    ("grader", po::value<std::string>()->default_value("paper"), "paper (the release's labels) | math (LaTeX + CAS)")
    ("chunk_questions", po::value<int64_t>()->default_value(64),
     "questions sampled between two checkpoints of the samples file (a rerun resumes after the last one)");
  // clang-format on
}

namespace {

std::string dump_line(const Json& record) {
  return record.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

// The records of a samples file that match the first questions of this run, in order (a torn last line, a
// different question or another sample count ends the prefix).
std::vector<Json> matching_prefix(const std::string& path, const std::vector<data::Problem>& problems,
                                  int64_t n) {
  std::vector<Json> out;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (out.size() < problems.size() && std::getline(in, line)) {
    if (in.eof()) break;  // no newline: a line cut short
    Json rec;
    try {
      rec = parse_json(line, path);
    } catch (const Error&) {
      break;
    }
    const data::Problem& p = problems[out.size()];
    if (!rec.is_object() || rec.value("id", Json()) != p.id || rec.value("question", Json()) != p.question ||
        !rec.contains("responses") || !rec["responses"].is_array() ||
        static_cast<int64_t>(rec["responses"].size()) != n)
      break;
    out.push_back(std::move(rec));
  }
  return out;
}

data::SampledQuestion sampled_question(const Json& rec) {
  data::SampledQuestion q;
  q.id = rec["id"].get<std::string>();
  q.question = rec["question"].get<std::string>();
  q.answers = rec["answer"].get<std::vector<std::string>>();
  for (const Json& r : rec["responses"])
    q.responses.push_back(
        {r["text"].get<std::string>(), r["extracted"].get<std::string>(), r["correct"].get<bool>()});
  return q;
}

}  // namespace

int run_prepare_startup_data(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("prepare_startup_data needs --dataset_name GSM8K|MATH|ARITH");
  const data::DatasetKind kind = data::parse_dataset(c.dataset_name);
  const grade::GraderKind grader = grade::parse_grader(ctx.vm["grader"].as<std::string>());
  const grade::Rules rules = data::grading_rules(kind);
  const std::string model_dir = resolve_model_path(c);
  const std::string model = model_label(c, model_dir);
  // --t and --sampling_n only when given (command line or --config); else the paper's table and 64.
  const double t = ctx.vm["t"].defaulted() ? data::default_temperature(model, kind) : c.t;
  if (!(t >= engine::kGreedyTemperature))
    throw UsageError(str("prepare_startup_data samples: --t must be > 0 (got ", t, ")"));
  const int64_t n = ctx.vm["sampling_n"].defaulted() ? kStartupSamples : c.sampling_n;
  if (n < 1) throw UsageError(str("--sampling_n must be >= 1 (got ", n, ")"));
  const int64_t chunk = ctx.vm["chunk_questions"].as<int64_t>();
  if (chunk < 1) throw UsageError(str("--chunk_questions must be >= 1 (got ", chunk, ")"));
  engine::SamplingParams params;
  params.n = n;
  params.temperature = t;
  params.top_p = top_p_option(ctx);
  params.max_new_tokens = max_new_tokens_option(ctx);
  params.stop = data::stop_strings(kind);

  const std::string split = data::train_split_path(kind, data_dir());
  const std::vector<data::Problem> problems = data::load_problems(split, c.max_questions);
  const int64_t Q = static_cast<int64_t>(problems.size());
  const std::string dir = output_path(c, "data/" + model);
  const std::string stem = dir + "/" + c.dataset_name;
  const std::string samples_path = stem + ".samples.jsonl", partial_path = stem + ".samples.partial.jsonl",
                    settings_path = stem + ".samples.config.json";

  Json config = Json::object();  // what the samples depend on (the question count aside)
  config["task"] = "prepare_startup_data";
  config["model_name"] = model;
  config["model_path"] = model_dir;
  config["lora_path"] = c.lora_path;
  config["dataset_name"] = c.dataset_name;
  config["split"] = split;
  config["grader"] = grade::grader_name(grader);
  config["t"] = t;
  config["sampling_n"] = n;
  config["top_p"] = params.top_p;
  config["max_new_tokens"] = params.max_new_tokens;
  config["seed"] = c.seed;

  // Rank 0 finds the questions already sampled with these settings; every rank learns how many.
  std::vector<Json> done;
  const bool rank0 = ctx.comm.rank() == 0;
  if (rank0) {
    const bool same = file_exists(settings_path) && read_json_file(settings_path) == config;
    if (same) {
      for (const std::string& path : {samples_path, partial_path}) {
        if (!file_exists(path)) continue;
        std::vector<Json> prefix = matching_prefix(path, problems, n);
        if (prefix.size() > done.size()) done = std::move(prefix);
      }
    } else if (file_exists(samples_path) || file_exists(partial_path)) {
      spdlog::warn("{}: sampled with other settings (or unknown ones): sampling again", samples_path);
    }
    if (!same) write_json_file_atomic(settings_path, config);
  }
  const int64_t start = std::stoll(ctx.comm.broadcast(std::to_string(done.size())));

  if (start < Q) {
    InferenceModel m = load_inference_model(c, ctx.comm);
    const data::PromptBuilder prompts(kind, data_dir());
    std::vector<std::string> texts(Q);
    for (int64_t i = 0; i < Q; ++i) texts[i] = prompts.build(problems[i].question);
    const PromptBatch batch = encode_prompts(*m.tokenizer, texts, n);
    spdlog::info("prepare_startup_data: {} questions of {} ({} already sampled), t = {}, n = {}, model {}{}",
                 Q, split, start, t, n, m.dir, c.lora_path.empty() ? "" : " + LoRA " + c.lora_path);

    std::ofstream partial;
    if (rank0) {  // the partial file holds exactly the questions done, then grows chunk by chunk
      std::string text;
      for (const Json& rec : done) text += dump_line(rec);
      write_file_atomic(partial_path, text);
      partial.open(partial_path, std::ios::binary | std::ios::app);
      if (!partial) throw Error(str("cannot append to '", partial_path, "'"));
    }
    engine::Engine eng(*m.model, *m.tokenizer, engine_options(ctx, "prepare_startup_data"));
    for (int64_t a = start; a < Q; a += chunk) {
      if (ctx.comm.any(stop_requested())) throw Stopped{};
      const int64_t b = std::min(Q, a + chunk);
      const std::vector<double> costs(batch.costs.begin() + a, batch.costs.begin() + b);
      std::vector<int64_t> mine = my_items(ctx, costs);
      for (int64_t& i : mine) i += a;
      std::vector<std::pair<int64_t, Json>> records;
      for (const engine::RequestOutput& out : eng.generate(make_requests(mine, batch.ids, c.seed, params))) {
        const int64_t i = mine[out.index];
        const data::Problem& p = problems[i];
        Json responses = Json::array();
        for (const engine::Completion& comp : out.completions) {
          const grade::Verdict v = grade::grade(rules, grader, comp.text, p.answers);
          responses.push_back(Json{{"text", comp.text}, {"extracted", v.extracted}, {"correct", v.correct}});
        }
        Json rec = Json::object();
        rec["id"] = p.id;
        rec["question"] = p.question;
        rec["answer"] = p.answers;
        rec["responses"] = std::move(responses);
        records.emplace_back(i - a, std::move(rec));
      }
      std::vector<Json> chunk_records = gather_records(ctx, records, b - a);
      if (!rank0) continue;
      for (Json& rec : chunk_records) {
        partial << dump_line(rec);
        done.push_back(std::move(rec));
      }
      partial.flush();
      if (!partial) throw Error(str("cannot write '", partial_path, "'"));
      spdlog::info("prepare_startup_data: {}/{} questions sampled", b, Q);
    }
  }
  if (!rank0) return 0;

  // The complete samples file, then the selection.
  JsonlWriter writer(samples_path);
  for (const Json& rec : done) writer.write(rec);
  writer.commit();
  std::error_code ignored;
  fs::remove(partial_path, ignored);

  std::vector<data::SampledQuestion> questions;
  std::vector<data::QuestionSelection> selections;
  int64_t samples = 0, correct = 0, negatives = 0, positives = 0, pairs = 0;
  for (int64_t i = 0; i < Q; ++i) {
    questions.push_back(sampled_question(done[i]));
    selections.push_back(
        data::select_responses(questions.back().responses, c.seed, static_cast<uint64_t>(i)));
    for (const data::GradedResponse& r : questions.back().responses) correct += r.correct ? 1 : 0;
    samples += static_cast<int64_t>(questions.back().responses.size());
    const data::QuestionSelection& s = selections.back();
    positives += s.positive >= 0 ? 1 : 0;
    negatives += static_cast<int64_t>(s.negatives.size());
    pairs += s.chosen >= 0 ? 1 : 0;
  }
  Json selection_config = config;
  selection_config["questions"] = Q;
  selection_config["sft_pos"] = "top_k 1 of the largest correct answer group";
  selection_config["sft_neg"] = "top_p 0.5 of the incorrect answer groups";
  selection_config["ctm_version"] = CTM_VERSION;
  write_json_file_atomic(stem + ".sft.json", data::build_sft_json(questions, selections, selection_config));
  write_json_file_atomic(
      stem + ".dpo.json",
      data::build_dpo_json(questions, selections, data::prompt_format(kind), selection_config));
  const double accuracy =
      samples > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(samples) : 0.0;
  char line[256];
  std::snprintf(
      line, sizeof line,
      "prepare_startup_data: %lld questions, %lld samples, accuracy %.2f%%, SFT pos %lld, SFT neg %lld, "
      "DPO pairs %lld",
      static_cast<long long>(Q), static_cast<long long>(samples), accuracy, static_cast<long long>(positives),
      static_cast<long long>(negatives), static_cast<long long>(pairs));
  std::cout << line << std::endl;
  spdlog::info("wrote {}.samples.jsonl, {}.sft.json and {}.dpo.json", stem, stem, stem);
  return 0;
}

}  // namespace ctm::tasks
