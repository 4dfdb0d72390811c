// ctm logprobs: for each JSONL line {"ids": [...]} or {"text": "..."} (tokenized with the model's tokenizer),
// writes the line plus "ids" and "logprobs": log p(token_t | tokens_<t) for every token after the first (n -
// 1 values). Ranks take lines i mod size; rank 0 gathers and writes the output atomically.
#include <algorithm>
#include <numeric>
#include <optional>

#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
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

// The token ids of one input line: "ids" as given (checked against the vocabulary) or "text" tokenized.
std::vector<int64_t> line_ids(const Json& line, const std::string& where, int64_t vocab_size,
                              const std::string& model_dir, std::optional<text::Tokenizer>& tokenizer) {
  if (!line.is_object()) throw Error(ctm::str(where, ": expected an object with \"ids\" or \"text\""));
  std::vector<int64_t> ids;
  if (auto it = line.find("ids"); it != line.end()) {
    if (!it->is_array()) throw Error(ctm::str(where, ": \"ids\" must be a list of token ids"));
    for (const auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size)
        throw Error(ctm::str(where, ": token id ", v.dump(), " is not in [0, ", vocab_size, ")"));
      ids.push_back(v.get<int64_t>());
    }
  } else if (auto t = line.find("text"); t != line.end()) {
    if (!t->is_string()) throw Error(ctm::str(where, ": \"text\" must be a string"));
    if (!tokenizer) tokenizer = text::Tokenizer::load(model_dir);
    for (int32_t id : tokenizer->encode(t->get<std::string>(), /*add_special_tokens=*/true))
      ids.push_back(id);
  } else {
    throw Error(ctm::str(where, ": needs \"ids\" or \"text\""));
  }
  if (ids.empty()) throw Error(ctm::str(where, ": empty sequence"));
  return ids;
}

}  // namespace

int run_logprobs(const TaskContext& ctx) {
  if (!ctx.vm.count("input")) throw UsageError("logprobs needs --input FILE.jsonl");
  if (!ctx.vm.count("output")) throw UsageError("logprobs needs --output FILE.jsonl");
  const std::string input_path = ctx.vm["input"].as<std::string>();
  const std::string output_path = ctx.vm["output"].as<std::string>();
  const int64_t batch_tokens = std::max<int64_t>(1, ctx.vm["batch_tokens"].as<int64_t>());
  const std::string model_dir = resolve_model_path(ctx.common);
  const torch::Device device = rank_device(ctx.common, ctx.comm);

  auto model = model::load_model(model_dir, device, model::default_dtype(device));
  if (!ctx.common.lora_path.empty()) model::load_peft(*model, ctx.common.lora_path);

  std::vector<Json> lines = read_jsonl(input_path, ctx.common.max_questions);
  std::optional<text::Tokenizer> tokenizer;
  const int rank = ctx.comm.rank(), size = ctx.comm.size();
  // This rank's lines, longest first so each batch pads little.
  std::vector<std::size_t> mine;
  std::vector<std::vector<int64_t>> ids(lines.size());
  for (std::size_t i = static_cast<std::size_t>(rank); i < lines.size();
       i += static_cast<std::size_t>(size)) {
    ids[i] = line_ids(lines[i], ctm::str(input_path, ":", i + 1), model->config().vocab_size, model_dir,
                      tokenizer);
    mine.push_back(i);
  }
  std::stable_sort(mine.begin(), mine.end(),
                   [&](std::size_t a, std::size_t b) { return ids[a].size() > ids[b].size(); });

  torch::NoGradGuard no_grad;
  Json results = Json::array();  // [line index, [logprobs]] of this rank
  for (std::size_t start = 0; start < mine.size();) {
    const int64_t longest = static_cast<int64_t>(ids[mine[start]].size());
    const std::size_t n = std::max<std::size_t>(1, static_cast<std::size_t>(batch_tokens / longest));
    const std::size_t end = std::min(mine.size(), start + n);
    std::vector<std::vector<int64_t>> seqs;
    for (std::size_t k = start; k < end; ++k) seqs.push_back(ids[mine[k]]);
    const auto lp_BT =
        model::sequence_logprobs(*model, model::pad_batch(seqs, device)).to(torch::kCPU, torch::kFloat64);
    for (std::size_t k = start; k < end; ++k) {
      const auto row = lp_BT[static_cast<int64_t>(k - start)];
      std::vector<double> values(row.data_ptr<double>(), row.data_ptr<double>() + (ids[mine[k]].size() - 1));
      results.push_back(Json::array({mine[k], values}));
    }
    start = end;
  }

  std::vector<std::string> all = ctx.comm.gather(results.dump());
  if (rank != 0) return 0;
  std::vector<Json> logprobs(lines.size());
  for (int r = 0; r < size; ++r)
    for (const auto& item : parse_json(all[r], ctm::str("logprobs of rank ", r)))
      logprobs[item[0].get<std::size_t>()] = item[1];
  // Lines tokenized on other ranks: tokenize here too for the output's "ids" (cheap next to the forward).
  JsonlWriter out(output_path);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    Json line = lines[i];
    if (ids[i].empty())
      ids[i] = line_ids(lines[i], ctm::str(input_path, ":", i + 1), model->config().vocab_size, model_dir,
                        tokenizer);
    line["ids"] = ids[i];
    line["logprobs"] = logprobs[i];
    out.write(line);
  }
  out.commit();
  spdlog::info("logprobs of {} sequences -> {}", lines.size(), output_path);
  return 0;
}

}  // namespace ctm::tasks
