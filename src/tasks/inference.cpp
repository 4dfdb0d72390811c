#include "ctm/tasks/inference.hpp"

#include <algorithm>
#include <filesystem>

#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/dist/partition.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/tasks/common.hpp"

namespace ctm::tasks {
namespace fs = std::filesystem;

void add_engine_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("max_new_tokens", po::value<int64_t>()->default_value(1024), "most tokens generated per sample")
    ("top_p", po::value<double>()->default_value(0.95), "nucleus sampling mass (the paper: 0.95)")
    ("max_batch", po::value<int64_t>()->default_value(64), "sequences decoded together (continuous batching)")
    ("kv_budget_mb", po::value<int64_t>()->default_value(4096), "KV-cache memory the engine may use, MiB");
  // clang-format on
}

engine::EngineOptions engine_options(const TaskContext& ctx, const std::string& progress_label) {
  engine::EngineOptions o;
  o.max_batch = ctx.vm["max_batch"].as<int64_t>();
  const int64_t mb = ctx.vm["kv_budget_mb"].as<int64_t>();
  if (o.max_batch < 1) throw UsageError(str("--max_batch must be >= 1 (got ", o.max_batch, ")"));
  if (mb < 1) throw UsageError(str("--kv_budget_mb must be >= 1 (got ", mb, ")"));
  o.kv_budget_bytes = mb << 20;
  o.progress = ctx.comm.rank() == 0 && ctx.common.log_level != "off";
  o.progress_label = progress_label;
  return o;
}

int64_t max_new_tokens_option(const TaskContext& ctx) {
  const int64_t n = ctx.vm["max_new_tokens"].as<int64_t>();
  if (n < 1) throw UsageError(str("--max_new_tokens must be >= 1 (got ", n, ")"));
  return n;
}

double top_p_option(const TaskContext& ctx) {
  const double p = ctx.vm["top_p"].as<double>();
  if (!(p > 0 && p <= 1)) throw UsageError(str("--top_p must be in (0, 1] (got ", p, ")"));
  return p;
}

InferenceModel load_inference_model(const CommonOptions& common, const dist::Comm& comm) {
  InferenceModel m;
  m.dir = resolve_model_path(common);
  const torch::Device device = rank_device(common, comm);
  m.model = model::load_model(m.dir, device, model::default_dtype(device));
  if (!common.lora_path.empty()) {
    model::load_peft(*m.model, common.lora_path);
    model::merge_lora(*m.model);  // one matrix product per projection again
    spdlog::info("LoRA adapter {} merged into {}", common.lora_path, m.dir);
  }
  m.tokenizer = std::make_unique<text::Tokenizer>(text::Tokenizer::load(m.dir));
  return m;
}

PromptBatch encode_prompts(const text::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                           int64_t samples_per_prompt) {
  PromptBatch b;
  b.ids.resize(prompts.size());
  b.costs.resize(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    b.ids[i] = tokenizer.encode(prompts[i], /*add_special_tokens=*/false);
    b.costs[i] = static_cast<double>(b.ids[i].size()) + 256.0 * static_cast<double>(samples_per_prompt);
  }
  return b;
}

std::vector<engine::Request> make_requests(const std::vector<int64_t>& items,
                                           const std::vector<std::vector<int32_t>>& ids, uint64_t seed,
                                           const engine::SamplingParams& params) {
  std::vector<engine::Request> requests;
  requests.reserve(items.size());
  for (int64_t i : items) {
    engine::Request r;
    r.id = i;
    r.seed = seed;
    r.prompt_ids = ids.at(i);
    r.params = params;
    requests.push_back(std::move(r));
  }
  return requests;
}

std::string model_label(const CommonOptions& common, const std::string& model_dir) {
  if (!common.model_name.empty()) return common.model_name;
  fs::path dir(model_dir);
  if (dir.filename().empty()) dir = dir.parent_path();
  return dir.filename().string();
}

std::vector<int64_t> my_items(const TaskContext& ctx, const std::vector<double>& costs) {
  if (ctx.comm.size() == 1) {
    std::vector<int64_t> all(costs.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    return all;
  }
  return dist::balanced_partition(costs, ctx.comm.size())[ctx.comm.rank()];
}

std::vector<Json> gather_records(const TaskContext& ctx, const std::vector<std::pair<int64_t, Json>>& mine,
                                 int64_t total) {
  Json packed = Json::array();
  for (const auto& [index, record] : mine) packed.push_back(Json::array({index, record}));
  const std::vector<std::string> parts =
      ctx.comm.gather(packed.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (ctx.comm.rank() != 0) return {};
  std::vector<Json> out(total);
  std::vector<bool> seen(total, false);
  for (size_t r = 0; r < parts.size(); ++r) {
    for (auto& item : parse_json(parts[r], str("records of rank ", r))) {
      const int64_t i = item[0].get<int64_t>();
      CTM_CHECK(i >= 0 && i < total && !seen[i], "gather_records: bad or repeated index ", i, " from rank ",
                r);
      seen[i] = true;
      out[i] = std::move(item[1]);
    }
  }
  for (int64_t i = 0; i < total; ++i) CTM_CHECK(seen[i], "gather_records: no rank returned item ", i);
  return out;
}

}  // namespace ctm::tasks
