#include "ctm/tasks/inference.hpp"

#include <algorithm>
#include <filesystem>

#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/dist/partition.hpp"
#include "ctm/engine/sampler.hpp"
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

engine::SamplingParams paper_sampling_params(const TaskContext& ctx, const std::string& model,
                                             data::DatasetKind kind, int64_t n, const std::string& task) {
  engine::SamplingParams p;
  p.n = n;
  p.temperature = option_given(ctx, "t") ? ctx.common.t : data::default_temperature(model, kind);
  if (!(p.temperature >= engine::kGreedyTemperature))
    throw UsageError(str(task, " samples: --t must be > 0 (got ", p.temperature, ")"));
  p.top_p = top_p_option(ctx);
  p.max_new_tokens = max_new_tokens_option(ctx);
  p.stop = data::stop_strings(kind);
  return p;
}

text::Tokenizer load_model_tokenizer(const std::string& dir, const model::ModelConfig& config) {
  text::Tokenizer tok = text::Tokenizer::load(dir);
  if (tok.vocab_size() > config.vocab_size)
    throw Error(str(dir, ": the tokenizer has ids up to ", tok.vocab_size() - 1,
                    " but the model's vocabulary is ", config.vocab_size,
                    " (config.json vocab_size): tokenizer.json does not belong to these weights"));
  return tok;
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
  m.tokenizer = std::make_unique<text::Tokenizer>(load_model_tokenizer(m.dir, m.model->config()));
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

engine::Request make_request(int64_t item, const std::vector<int32_t>& prompt_ids, uint64_t seed,
                             const engine::SamplingParams& params) {
  engine::Request r;
  r.id = item;
  r.seed = seed;
  r.prompt_ids = prompt_ids;
  r.params = params;
  return r;
}

std::vector<int64_t> my_share(const TaskContext& ctx, const std::vector<int64_t>& items,
                              const std::vector<double>& costs_by_item) {
  if (ctx.comm.size() == 1) return items;
  std::vector<double> costs;
  costs.reserve(items.size());
  for (int64_t i : items) costs.push_back(costs_by_item.at(i));
  const auto parts = dist::balanced_partition(costs, ctx.comm.size());
  std::vector<int64_t> share;
  for (int64_t k : parts[ctx.comm.rank()]) share.push_back(items[k]);
  return share;
}

void sample_pending(const TaskContext& ctx, engine::Engine& eng, ResumableWork& work,
                    const std::vector<double>& costs_by_item,
                    const std::function<engine::Request(int64_t item)>& request_of,
                    const std::function<Json(int64_t item, const engine::RequestOutput&)>& record_of,
                    const std::string& unit) {
  const std::vector<int64_t> mine = my_share(ctx, work.pending(), costs_by_item);
  std::vector<engine::Request> requests;
  requests.reserve(mine.size());
  for (int64_t i : mine) requests.push_back(request_of(i));
  eng.generate(requests, [&](const engine::RequestOutput& out) {
    const int64_t item = mine[out.index];
    work.add(item, record_of(item, out));
  });
  work.stop_if_requested(unit);
}

}  // namespace ctm::tasks
