// ctm generate: completions for the prompts of a JSONL file. Each input line has "prompt" (text, tokenized
// without special tokens unless --add_special_tokens) or "ids" (token ids), and optionally "n",
// "temperature", "top_p", "max_new_tokens", "stop" (a string or a list) and "seed"; missing ones come from
// the options (--t, --top_p, --max_new_tokens, --seed). Every field is range-checked before anything is
// allocated. Each output line is the input line plus "completions" (n strings), "completion_ids" (n lists;
// the EOS or the token completing a stop string included) and "finish_reasons". Lines are journaled as they
// finish (ResumableWork): SIGTERM keeps them and a rerun goes on. Ranks split the lines; line i's samples are
// seeded by (seed, i, sample), so the output does not depend on the rank count or on the other lines.
#include <limits>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/resumable.hpp"

namespace ctm::tasks {

void add_generate_options(po::options_description& desc) {
  add_engine_options(desc);
  // clang-format off
  desc.add_options()
    ("input", po::value<std::string>(), "JSONL prompts: \"prompt\" or \"ids\" per line (+ optional sampling fields)")
    ("output", po::value<std::string>(), "JSONL: each input line plus \"completions\" and \"completion_ids\"")
    ("add_special_tokens", po::bool_switch()->default_value(false), "tokenize \"prompt\" with BOS etc.");
  // clang-format on
}

namespace {

constexpr int64_t kMaxStops = 64, kMaxStopBytes = 1024;

std::vector<std::string> parse_stops(const Json& s, const std::string& where) {
  std::vector<std::string> stops;
  const Json list = s.is_string() ? Json::array({s}) : s;
  if (!list.is_array() || static_cast<int64_t>(list.size()) > kMaxStops)
    throw Error(str(where, ": \"stop\" must be a string or a list of at most ", kMaxStops, " strings"));
  for (const Json& v : list) {
    if (!v.is_string() || v.get<std::string>().empty() ||
        static_cast<int64_t>(v.get<std::string>().size()) > kMaxStopBytes)
      throw Error(
          str(where, ": every \"stop\" must be a non-empty string of at most ", kMaxStopBytes, " bytes"));
    stops.push_back(v.get<std::string>());
  }
  return stops;
}

// The request of one input line; every field range-checked, errors name the file and line.
engine::Request parse_line(const Json& rec, int64_t index, const std::string& where, const TaskContext& ctx,
                           const text::Tokenizer& tok, const model::ModelConfig& cfg) {
  const CommonOptions& c = ctx.common;
  if (!rec.is_object()) throw Error(str(where, ": expected a JSON object"));
  engine::Request r;
  r.id = index;
  const int64_t max_pos = cfg.max_position_embeddings;
  if (rec.contains("ids")) {
    const Json& ids = rec.at("ids");
    if (!ids.is_array() || static_cast<int64_t>(ids.size()) >= max_pos)
      throw Error(
          str(where, ": \"ids\" must be a list of fewer than ", max_pos, " token ids (the model's context)"));
    for (const Json& v : ids)
      r.prompt_ids.push_back(
          static_cast<int32_t>(json_integer(v, 0, cfg.vocab_size - 1, "every id in \"ids\"", where)));
  } else if (rec.contains("prompt")) {
    if (!rec.at("prompt").is_string()) throw Error(str(where, ": \"prompt\" must be a string"));
    r.prompt_ids = tok.encode(rec.at("prompt").get<std::string>(), ctx.vm["add_special_tokens"].as<bool>());
    if (static_cast<int64_t>(r.prompt_ids.size()) >= max_pos)
      throw Error(str(where, ": the prompt has ", r.prompt_ids.size(), " tokens; the model has ", max_pos,
                      " positions"));
  } else {
    throw Error(str(where, ": needs \"prompt\" (text) or \"ids\" (token ids)"));
  }
  if (r.prompt_ids.empty()) throw Error(str(where, ": empty prompt"));
  auto field = [&](const char* key) -> const Json* { return rec.contains(key) ? &rec.at(key) : nullptr; };
  r.params.n = field("n") ? json_integer(*field("n"), 1, engine::kMaxSamplesPerRequest, "\"n\"", where) : 1;
  r.params.temperature =
      field("temperature") ? json_number(*field("temperature"), 0, 100, "\"temperature\"", where) : c.t;
  r.params.top_p =
      field("top_p") ? json_number(*field("top_p"), 1e-9, 1, "\"top_p\"", where) : top_p_option(ctx);
  r.params.max_new_tokens = field("max_new_tokens") ? json_integer(*field("max_new_tokens"), 1, max_pos,
                                                                   "\"max_new_tokens\"", where)
                                                    : max_new_tokens_option(ctx);
  r.seed = field("seed") ? static_cast<uint64_t>(json_integer(
                               *field("seed"), 0, std::numeric_limits<int64_t>::max(), "\"seed\"", where))
                         : c.seed;
  if (field("stop")) r.params.stop = parse_stops(*field("stop"), where);
  return r;
}

// The output line of input line `line`.
Json output_line(Json line, const engine::RequestOutput& out) {
  Json texts = Json::array(), ids = Json::array(), reasons = Json::array();
  for (const auto& comp : out.completions) {
    texts.push_back(comp.text);
    ids.push_back(comp.token_ids);
    reasons.push_back(engine::finish_reason_name(comp.finish));
  }
  line["completions"] = std::move(texts);
  line["completion_ids"] = std::move(ids);
  line["finish_reasons"] = std::move(reasons);
  return line;
}

}  // namespace

int run_generate(const TaskContext& ctx) {
  if (!ctx.vm.count("input")) throw UsageError("generate needs --input FILE.jsonl");
  if (!ctx.vm.count("output")) throw UsageError("generate needs --output FILE.jsonl");
  const std::string input = ctx.vm["input"].as<std::string>(), output = ctx.vm["output"].as<std::string>();
  check_output_file(output);
  const std::vector<Json> lines = read_jsonl(input, ctx.common.max_questions);
  InferenceModel m = load_inference_model(ctx.common, ctx.comm);
  std::vector<engine::Request> all;
  for (size_t i = 0; i < lines.size(); ++i)
    all.push_back(parse_line(lines[i], static_cast<int64_t>(i), str(input, ":", i + 1), ctx, *m.tokenizer,
                             m.model->config()));
  const int64_t L = static_cast<int64_t>(lines.size());
  std::vector<double> costs(L);
  for (int64_t i = 0; i < L; ++i)
    costs[i] = static_cast<double>(all[i].prompt_ids.size()) +
               static_cast<double>(all[i].params.n * std::min<int64_t>(all[i].params.max_new_tokens, 256));

  const CommonOptions& c = ctx.common;
  const Json settings = {{"task", "generate"},
                         {"input", input},
                         {"model_path", m.dir},
                         {"lora_path", c.lora_path},
                         {"t", c.t},
                         {"top_p", top_p_option(ctx)},
                         {"max_new_tokens", max_new_tokens_option(ctx)},
                         {"seed", c.seed},
                         {"add_special_tokens", ctx.vm["add_special_tokens"].as<bool>()}};
  ResumableWork work(ctx, output, settings, L, [&](int64_t i, const Json& rec) -> std::string {
    Json input_part = rec;
    for (const char* k : {"completions", "completion_ids", "finish_reasons"}) input_part.erase(k);
    return input_part == lines[i] ? "" : "not this input line (the input changed?)";
  });
  work.recover();
  spdlog::info("generate: {} lines of {} ({} already done), model {}", L, input, work.done_count(), m.dir);
  if (work.done_count() < L) {
    engine::Engine eng(*m.model, *m.tokenizer, engine_options(ctx, "generate"));
    sample_pending(
        ctx, eng, work, costs, [&](int64_t i) { return all[i]; },
        [&](int64_t i, const engine::RequestOutput& out) { return output_line(lines[i], out); }, "lines");
  }
  if (ctx.comm.rank() == 0) {
    JsonlWriter writer(output);
    for (const Json& rec : work.collect_all()) writer.write(rec);
    writer.commit();
    spdlog::info("generate: wrote {} lines to {}", L, output);
  }
  work.finish();
  return 0;
}

}  // namespace ctm::tasks
