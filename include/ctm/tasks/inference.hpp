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
// The model of --model_path / --model_name on --device, with --lora_path's adapter merged into the weights.
InferenceModel load_inference_model(const CommonOptions& common);

// Item indices [0, n) of this rank: a cost-balanced static partition (dist::balanced_partition).
std::vector<int64_t> my_items(const TaskContext& ctx, const std::vector<double>& costs);

// Every rank's (index, record) pairs on rank 0, as one vector in index order (other ranks get an empty one).
std::vector<Json> gather_records(const TaskContext& ctx, const std::vector<std::pair<int64_t, Json>>& mine,
                                 int64_t total);

}  // namespace ctm::tasks
