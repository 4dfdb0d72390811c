// ctm generate: completions for the prompts of a JSONL file. Each input line has "prompt" (text, tokenized
// without special tokens unless --add_special_tokens) or "ids" (token ids), and optionally "n",
// "temperature", "top_p", "max_new_tokens", "stop" (a string or a list) and "seed"; missing ones come from
// the options (--t, --top_p,
// --max_new_tokens, --seed). Each output line is the input line plus "completions" (n strings),
// "completion_ids" (n lists; the EOS or the token completing a stop string included) and "finish_reasons".
// Ranks split the lines; line i's samples are seeded by (seed, i, sample), so the output does not depend on
// the rank count or on the other lines.
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/inference.hpp"

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

// The request of one input line; errors name the file and line.
engine::Request parse_line(const Json& rec, int64_t index, const std::string& where, const TaskContext& ctx,
                           const text::Tokenizer& tok, int32_t vocab) {
  const CommonOptions& c = ctx.common;
  auto fail = [&](const std::string& what) -> engine::Request { throw Error(str(where, ": ", what)); };
  if (!rec.is_object()) return fail("expected a JSON object");
  engine::Request r;
  r.id = index;
  r.seed = c.seed;
  try {
    if (rec.contains("ids")) {
      for (const Json& v : rec.at("ids")) {
        const int64_t id = v.get<int64_t>();
        if (id < 0 || id >= vocab)
          return fail(str("\"ids\" holds ", id, ", outside the vocabulary of ", vocab));
        r.prompt_ids.push_back(static_cast<int32_t>(id));
      }
    } else if (rec.contains("prompt")) {
      r.prompt_ids = tok.encode(rec.at("prompt").get<std::string>(), ctx.vm["add_special_tokens"].as<bool>());
    } else {
      return fail("needs \"prompt\" (text) or \"ids\" (token ids)");
    }
    if (r.prompt_ids.empty()) return fail("empty prompt");
    r.params.n = rec.value("n", int64_t{1});
    r.params.temperature = rec.value("temperature", c.t);
    r.params.top_p = rec.value("top_p", top_p_option(ctx));
    r.params.max_new_tokens = rec.value("max_new_tokens", max_new_tokens_option(ctx));
    r.seed = rec.value("seed", c.seed);
    if (rec.contains("stop")) {
      const Json& s = rec.at("stop");
      if (s.is_string()) {
        r.params.stop.push_back(s.get<std::string>());
      } else {
        for (const Json& v : s) r.params.stop.push_back(v.get<std::string>());
      }
    }
  } catch (const Json::exception& e) {
    return fail(str("bad field: ", e.what()));
  }
  if (r.params.n < 1) return fail(str("\"n\" must be >= 1 (got ", r.params.n, ")"));
  if (r.params.temperature < 0)
    return fail(str("\"temperature\" must be >= 0 (got ", r.params.temperature, ")"));
  if (!(r.params.top_p > 0 && r.params.top_p <= 1)) return fail(str("\"top_p\" must be in (0, 1]"));
  if (r.params.max_new_tokens < 1) return fail("\"max_new_tokens\" must be >= 1");
  return r;
}

}  // namespace

int run_generate(const TaskContext& ctx) {
  if (!ctx.vm.count("input")) throw UsageError("generate needs --input FILE.jsonl");
  if (!ctx.vm.count("output")) throw UsageError("generate needs --output FILE.jsonl");
  const std::string input = ctx.vm["input"].as<std::string>(), output = ctx.vm["output"].as<std::string>();
  InferenceModel m = load_inference_model(ctx.common, ctx.comm);
  const int32_t vocab = static_cast<int32_t>(m.model->config().vocab_size);

  std::vector<Json> lines;
  std::vector<engine::Request> all;
  {
    JsonlReader reader(input);
    Json rec;
    while (reader.next(rec)) {
      all.push_back(
          parse_line(rec, static_cast<int64_t>(lines.size()), reader.where(), ctx, *m.tokenizer, vocab));
      lines.push_back(std::move(rec));
      if (ctx.common.max_questions >= 0 && static_cast<int64_t>(lines.size()) >= ctx.common.max_questions)
        break;
    }
  }
  const int64_t L = static_cast<int64_t>(lines.size());
  std::vector<double> costs(L);
  for (int64_t i = 0; i < L; ++i)
    costs[i] = static_cast<double>(all[i].prompt_ids.size()) +
               static_cast<double>(all[i].params.n * std::min<int64_t>(all[i].params.max_new_tokens, 256));
  const std::vector<int64_t> mine = my_items(ctx, costs);
  std::vector<engine::Request> requests;
  for (int64_t i : mine) requests.push_back(all[i]);
  spdlog::info("generate: {} lines of {} ({} on this rank), model {}", L, input, requests.size(), m.dir);

  engine::Engine eng(*m.model, *m.tokenizer, engine_options(ctx, "generate"));
  std::vector<std::pair<int64_t, Json>> records;
  for (const engine::RequestOutput& out : eng.generate(requests)) {
    const int64_t i = mine[out.index];
    Json rec = lines[i];
    Json texts = Json::array(), ids = Json::array(), reasons = Json::array();
    for (const auto& comp : out.completions) {
      texts.push_back(comp.text);
      ids.push_back(comp.token_ids);
      reasons.push_back(engine::finish_reason_name(comp.finish));
    }
    rec["completions"] = std::move(texts);
    rec["completion_ids"] = std::move(ids);
    rec["finish_reasons"] = std::move(reasons);
    records.emplace_back(i, std::move(rec));
  }
  const std::vector<Json> gathered = gather_records(ctx, records, L);
  if (ctx.comm.rank() != 0) return 0;
  JsonlWriter writer(output);
  for (const Json& rec : gathered) writer.write(rec);
  writer.commit();
  spdlog::info("generate: wrote {} lines to {}", L, output);
  return 0;
}

}  // namespace ctm::tasks
