// ctm train_sft: the paper's +SFT baseline, LoRA SFT on the chosen responses of the DPO pairs (prompt +
// chosen, the loss on the tokens after the last "Answer:"), with cDPO's adapter shape and schedule by default
// so that the two differ only in the loss. Writes checkpoints/{model}/{dataset}/sft_chosen/.
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/data/selection.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/lora_training.hpp"
#include "ctm/tasks/plan.hpp"
#include "ctm/tasks/scored_pairs.hpp"
#include "ctm/train/lm.hpp"
#include "ctm/train/lm_data.hpp"

namespace ctm::tasks {

void add_train_sft_options(po::options_description& desc) {
  add_lora_training_options(desc, cdpo_training_defaults());
  desc.add_options()(
      "dpo_data", po::value<std::string>()->default_value(""),
      "DPO pairs, ours or the release's (default: data/<model>/<dataset>.dpo_top_k1.<tag>.json)");
  add_dry_run_option(desc);
}

int run_train_sft(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("train_sft needs --dataset_name GSM8K|MATH|ARITH");
  const data::DatasetKind kind = data::parse_dataset(c.dataset_name);
  const LoraTraining t = lora_training(ctx, "train_sft");
  const std::string base_dir = resolve_model_path(c);
  const std::string model_name = model_label(c, base_dir);
  const ScoredPairPaths paths = scored_pair_paths(ctx, model_name);
  const std::string out = adapter_dir(ctx, model_name, "sft_chosen");
  check_output_folder(out);
  const std::vector<data::DpoPairText> texts = data::read_dpo_json(paths.dpo);
  const ModelCheck checked = check_model_folder(base_dir);
  const text::Tokenizer& tok = checked.tokenizer;
  const std::string marker = data::python_strip(data::prompt_format(kind).answer_prefix);
  std::vector<train::LmExample> examples;
  int64_t dropped = 0;
  for (const auto& p : texts) {
    auto ex = train::response_example(tok, p.prompt + p.chosen, marker, /*add_eos=*/false, t.max_length);
    if (!ex || std::count(ex->is_target.begin(), ex->is_target.end(), 1) == 0) {
      ++dropped;
      continue;
    }
    examples.push_back(std::move(*ex));
  }
  CTM_CHECK(!examples.empty(), paths.dpo, ": no chosen response to train on");
  const std::string what = str("sft_chosen on ", examples.size(), " chosen responses of ", paths.dpo, " (",
                               dropped, " without a response dropped)");
  if (dry_run(ctx)) {
    const std::vector<int64_t> lengths = train::example_lengths(examples);
    const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    Plan plan("train_sft");
    plan.model(ctx, checked);
    plan_training(plan, ctx, checked, t, what, static_cast<int64_t>(examples.size()), 1, longest);
    plan.add("outputs", str(out, " (training state in ", out, ".state)"));
    plan.resume_state(out, "replaced by the new adapter");
    plan.print(ctx);
    return 0;
  }
  spdlog::info("train_sft: {}", what);
  BaseModel base = load_base_model(ctx, t.fsdp);
  model::Transformer& model = *base.model;
  const int32_t pad = tok.eos_id().value_or(0);
  const train::Split train_split{train::example_lengths(examples), train::lm_loss_fn(model, examples, pad)};
  const Json info = {{"task", "train_sft"},
                     {"dpo_data", paths.dpo},
                     {"examples", examples.size()},
                     {"dropped_examples", dropped}};
  train_adapter(ctx, base, t, train_split, train::Split{}, out, info);
  if (ctx.comm.rank() == 0) std::cout << "train_sft: adapter in " << out << std::endl;
  return 0;
}

}  // namespace ctm::tasks
