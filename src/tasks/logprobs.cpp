// ctm logprobs: for each JSONL line {"ids": [...]} or {"text": "..."} (tokenized with the model's tokenizer),
// writes the line plus "ids" and "logprobs": log p(token_t | tokens_<t) for every token after the first (n -
// 1 values). Every sequence must fit the model's context, and a non-finite log-probability (a broken model)
// is an error, never a null in the output. Lines are journaled batch by batch (ResumableWork): SIGTERM keeps
// them and a rerun goes on. Ranks split the lines by length; rank 0 writes the output atomically.
#include <algorithm>
#include <cmath>
#include <optional>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/resumable.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::tasks {

void add_logprobs_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("input", po::value<std::string>(), "JSONL: {\"ids\": [...]} or {\"text\": \"...\"} per line")
    ("output", po::value<std::string>(), "JSONL: each input line plus \"ids\" and \"logprobs\" (n - 1 values)")
    ("batch_tokens", po::value<int64_t>()->default_value(4096), "padded tokens per forward pass");
  // clang-format on
}

namespace {

// The token ids of one input line: "ids" as given (checked against the vocabulary) or "text" tokenized; the
// sequence must fit the model's positions.
std::vector<int64_t> line_ids(const Json& line, const std::string& where, const model::ModelConfig& cfg,
                              const std::string& model_dir, std::optional<text::Tokenizer>& tokenizer) {
  if (!line.is_object()) throw Error(ctm::str(where, ": expected an object with \"ids\" or \"text\""));
  std::vector<int64_t> ids;
  if (auto it = line.find("ids"); it != line.end()) {
    if (!it->is_array()) throw Error(ctm::str(where, ": \"ids\" must be a list of token ids"));
    if (static_cast<int64_t>(it->size()) > cfg.max_position_embeddings)
      throw Error(ctm::str(where, ": ", it->size(), " ids; the model has ", cfg.max_position_embeddings,
                           " positions"));
    for (const auto& v : *it)
      ids.push_back(json_integer(v, 0, cfg.vocab_size - 1, "every id in \"ids\"", where));
  } else if (auto t = line.find("text"); t != line.end()) {
    if (!t->is_string()) throw Error(ctm::str(where, ": \"text\" must be a string"));
    if (!tokenizer) tokenizer = load_model_tokenizer(model_dir, cfg);
    for (int32_t id : tokenizer->encode(t->get<std::string>(), /*add_special_tokens=*/true))
      ids.push_back(id);
  } else {
    throw Error(ctm::str(where, ": needs \"ids\" or \"text\""));
  }
  if (ids.empty()) throw Error(ctm::str(where, ": empty sequence"));
  if (static_cast<int64_t>(ids.size()) > cfg.max_position_embeddings)
    throw Error(ctm::str(where, ": ", ids.size(), " tokens; the model has ", cfg.max_position_embeddings,
                         " positions"));
  return ids;
}

}  // namespace

int run_logprobs(const TaskContext& ctx) {
  if (!ctx.vm.count("input")) throw UsageError("logprobs needs --input FILE.jsonl");
  if (!ctx.vm.count("output")) throw UsageError("logprobs needs --output FILE.jsonl");
  const std::string input_path = ctx.vm["input"].as<std::string>();
  const std::string output_path = ctx.vm["output"].as<std::string>();
  const int64_t batch_tokens = int_option(ctx, "batch_tokens", 1, int64_t{1} << 32);
  check_output_file(output_path);
  const std::string model_dir = resolve_model_path(ctx.common);
  const torch::Device device = rank_device(ctx.common, ctx.comm);
  const std::vector<Json> lines = read_jsonl(input_path, ctx.common.max_questions);

  auto model = model::load_model(model_dir, device, model::default_dtype(device));
  if (!ctx.common.lora_path.empty()) model::load_peft(*model, ctx.common.lora_path);
  std::optional<text::Tokenizer> tokenizer;
  const int64_t L = static_cast<int64_t>(lines.size());
  std::vector<std::vector<int64_t>> ids(L);
  std::vector<double> costs(L);
  for (int64_t i = 0; i < L; ++i) {
    ids[i] = line_ids(lines[i], ctm::str(input_path, ":", i + 1), model->config(), model_dir, tokenizer);
    costs[i] = static_cast<double>(ids[i].size());
  }

  const Json settings = {{"task", "logprobs"},
                         {"input", input_path},
                         {"model_path", model_dir},
                         {"lora_path", ctx.common.lora_path},
                         {"device", ctx.common.device}};
  ResumableWork work(ctx, output_path, settings, L, [&](int64_t i, const Json& rec) -> std::string {
    return rec.is_object() && rec.value("ids", Json()) == Json(ids[i]) ? "" : "not this line's tokens";
  });
  work.recover();

  // This rank's pending lines, longest first so each batch pads little.
  std::vector<int64_t> mine = my_share(ctx, work.pending(), costs);
  std::stable_sort(mine.begin(), mine.end(),
                   [&](int64_t a, int64_t b) { return ids[a].size() > ids[b].size(); });
  torch::NoGradGuard no_grad;
  for (size_t start = 0; start < mine.size() && !stop_requested();) {
    const int64_t longest = static_cast<int64_t>(ids[mine[start]].size());
    const size_t n = std::max<size_t>(1, static_cast<size_t>(batch_tokens / longest));
    const size_t end = std::min(mine.size(), start + n);
    std::vector<std::vector<int64_t>> seqs;
    for (size_t k = start; k < end; ++k) seqs.push_back(ids[mine[k]]);
    const auto lp_BT =
        model::sequence_logprobs(*model, model::pad_batch(seqs, device)).to(torch::kCPU, torch::kFloat64);
    for (size_t k = start; k < end; ++k) {
      const int64_t i = mine[k];
      const auto row = lp_BT[static_cast<int64_t>(k - start)];
      std::vector<double> values(row.data_ptr<double>(), row.data_ptr<double>() + (ids[i].size() - 1));
      for (double v : values)
        if (!std::isfinite(v))
          throw Error(ctm::str(input_path, ":", i + 1, ": the model gives a non-finite log-probability (", v,
                               "); its weights or config.json are broken"));
      work.add(i, Json{{"ids", ids[i]}, {"logprobs", values}});
    }
    start = end;
  }
  work.stop_if_requested("lines");

  if (ctx.comm.rank() == 0) {
    JsonlWriter out(output_path);
    std::vector<Json> records = work.collect_all();
    for (int64_t i = 0; i < L; ++i) {
      Json line = lines[i];
      line["ids"] = std::move(records[i]["ids"]);
      line["logprobs"] = std::move(records[i]["logprobs"]);
      out.write(line);
    }
    out.commit();
    spdlog::info("logprobs of {} sequences -> {}", L, output_path);
  }
  work.finish();
  return 0;
}

}  // namespace ctm::tasks
