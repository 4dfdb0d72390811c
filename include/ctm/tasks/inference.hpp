// What the sampling tasks (evaluation, generate, and any task that samples) share: the engine's options,
// loading a model (+ LoRA, merged for speed) with its tokenizer, and splitting items over ranks with the
// results gathered back in item order.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ctm/engine/engine.hpp"
#include "ctm/io/json.hpp"
#include "ctm/model/transformer.hpp"
#include "ctm/tasks/task.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::tasks {

// --max_new_tokens, --top_p, --max_batch, --kv_budget_mb.
void add_engine_options(po::options_description& desc);
engine::EngineOptions engine_options(const TaskContext& ctx, const std::string& progress_label);
int64_t max_new_tokens_option(const TaskContext& ctx);
double top_p_option(const TaskContext& ctx);

struct InferenceModel {
  std::string dir;  // the model folder
  std::shared_ptr<model::Transformer> model;
  std::unique_ptr<text::Tokenizer> tokenizer;  // stable address: the engine keeps a reference
};
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

// One request per item (item i: prompt ids[i], request id i), so every sample is seeded by (seed, item,
// sample) whatever rank or batch it runs in.
std::vector<engine::Request> make_requests(const std::vector<int64_t>& items,
                                           const std::vector<std::vector<int32_t>>& ids, uint64_t seed,
                                           const engine::SamplingParams& params);

// The model's name in output paths: --model_name, else the model folder's name.
std::string model_label(const CommonOptions& common, const std::string& model_dir);

// Item indices [0, n) of this rank: a cost-balanced static partition (dist::balanced_partition).
std::vector<int64_t> my_items(const TaskContext& ctx, const std::vector<double>& costs);

// Every rank's (index, record) pairs on rank 0, as one vector in index order (other ranks get an empty one).
std::vector<Json> gather_records(const TaskContext& ctx, const std::vector<std::pair<int64_t, Json>>& mine,
                                 int64_t total);

}  // namespace ctm::tasks
