// What the sampling tasks (evaluation, generate, and any task that samples) share: the engine's options,
// loading a model (+ LoRA, merged for speed) with its tokenizer, and splitting items over ranks with the
// results gathered back in item order.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctm/data/dataset.hpp"
#include "ctm/engine/engine.hpp"
#include "ctm/io/json.hpp"
#include "ctm/model/transformer.hpp"
#include "ctm/tasks/resumable.hpp"
#include "ctm/tasks/task.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::tasks {

// --max_new_tokens, --top_p, --max_batch, --kv_budget_mb.
void add_engine_options(po::options_description& desc);
engine::EngineOptions engine_options(const TaskContext& ctx, const std::string& progress_label);
int64_t max_new_tokens_option(const TaskContext& ctx);
double top_p_option(const TaskContext& ctx);
// How the startup data and the rollouts are sampled: n samples at --t when given, else the paper's
// temperature for the model and data set (UsageError naming `task` unless > 0), --top_p, --max_new_tokens,
// and the data set's stop strings.
engine::SamplingParams paper_sampling_params(const TaskContext& ctx, const std::string& model,
                                             data::DatasetKind kind, int64_t n, const std::string& task);

struct InferenceModel {
  std::string dir;  // the model folder
  std::shared_ptr<model::Transformer> model;
  std::unique_ptr<text::Tokenizer> tokenizer;  // stable address: the engine keeps a reference
};
// The tokenizer of a model folder, checked against the model: a token id the model has no embedding for is an
// error at load, not an index error in the middle of a run.
text::Tokenizer load_model_tokenizer(const std::string& dir, const model::ModelConfig& config);

// The model of --model_path / --model_name on this rank's device (rank_device), with --lora_path's adapter
// merged into the weights.
InferenceModel load_inference_model(const CommonOptions& common, const dist::Comm& comm);

// The prompt token ids of every problem (the dataset's prompt, no BOS, DESIGN.md §2) and a cost per problem
// for my_items: prompt length + 256 per sample.
struct PromptBatch {
  std::vector<std::vector<int32_t>> ids;
  std::vector<double> costs;
};
PromptBatch encode_prompts(const text::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                           int64_t samples_per_prompt);

// The request of item i (request id i), so every sample is seeded by (seed, item, sample) whatever rank or
// batch it runs in.
engine::Request make_request(int64_t item, const std::vector<int32_t>& prompt_ids, uint64_t seed,
                             const engine::SamplingParams& params);

// This rank's share of `items` (ids into costs_by_item): a cost-balanced static partition
// (dist::balanced_partition), each share in increasing id order.
std::vector<int64_t> my_share(const TaskContext& ctx, const std::vector<int64_t>& items,
                              const std::vector<double>& costs_by_item);

// Samples the pending items of `work`: this rank takes its my_share of them, runs them through the engine and
// journals each item the moment its request finishes (record_of(item, output) is what is kept). On SIGTERM
// the requests in flight are finished and saved, then every rank throws ctm::Stopped saying how many `unit`s
// are kept.
void sample_pending(const TaskContext& ctx, engine::Engine& eng, ResumableWork& work,
                    const std::vector<double>& costs_by_item,
                    const std::function<engine::Request(int64_t item)>& request_of,
                    const std::function<Json(int64_t item, const engine::RequestOutput&)>& record_of,
                    const std::string& unit);

}  // namespace ctm::tasks
