// ctm train_cdpo (DESIGN.md §2 "cDPO") and its baselines: LoRA preference training on the DPO pairs with
// --loss cdpo (the rejected tokens weighted by 1 − ce_prob from calculate_ce_score; --cdpo_loss sequence, the
// paper's equation, or token, what the release's code computes), dpo or rpo (DPO + the chosen response's
// NLL). Sequences are BOS + prompt + response + EOS (the EOS is in the loss, weight 1); the reference is the
// base with the adapters off; pairs whose prompt has --max_prompt_length tokens or more, or whose sequence
// would exceed
// --max_length, are dropped. Writes checkpoints/{model}/{dataset}/{cdpo|cdpo_token|dpo|rpo}/ (PEFT adapter,
// metrics.jsonl with TRL's metrics, training_info.json); the training state resumes exactly after a stop.
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/selection.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/lora_training.hpp"
#include "ctm/tasks/plan.hpp"
#include "ctm/tasks/scored_pairs.hpp"
#include "ctm/train/preference.hpp"

namespace ctm::tasks {

void add_train_cdpo_options(po::options_description& desc) {
  add_lora_training_options(desc, cdpo_training_defaults());
  // clang-format off
  desc.add_options()
    ("loss", po::value<std::string>()->default_value("cdpo"), "cdpo | dpo | rpo")
    ("cdpo_loss", po::value<std::string>()->default_value("sequence"),
     "sequence (the paper's equation) | token (what the release's code computes)")
    ("beta", po::value<double>()->default_value(0.1), "DPO beta")
    ("rpo_alpha", po::value<double>()->default_value(1.0), "RPO: weight of the chosen response's NLL")
    ("max_prompt_length", po::value<int64_t>()->default_value(512), "pairs whose prompt has this many tokens are dropped")
    ("dpo_data", po::value<std::string>()->default_value(""),
     "DPO pairs, ours or the release's (default: data/<model>/<dataset>.dpo_top_k1.<tag>.json)")
    ("ce_scores", po::value<std::string>()->default_value(""),
     "CE scores for --loss cdpo: our .h5 or the release's CE_scored .json (default: data/<model>/<dataset>.ce_scores.h5)");
  // clang-format on
  add_dry_run_option(desc);
}

namespace {

std::string stage_name(train::PreferenceLoss loss, train::CdpoForm form) {
  if (loss != train::PreferenceLoss::CDPO) return train::preference_loss_name(loss);
  return form == train::CdpoForm::Token ? "cdpo_token" : "cdpo";
}

}  // namespace

int run_train_cdpo(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("train_cdpo needs --dataset_name GSM8K|MATH|ARITH");
  data::parse_dataset(c.dataset_name);
  train::PreferenceOptions po;
  try {
    po.loss = train::parse_preference_loss(ctx.vm["loss"].as<std::string>());
    po.form = train::parse_cdpo_form(ctx.vm["cdpo_loss"].as<std::string>());
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  po.beta = real_option(ctx, "beta", 1e-6, 1e3);
  po.rpo_alpha = real_option(ctx, "rpo_alpha", 0, 1e3);
  const int64_t max_prompt = int_option(ctx, "max_prompt_length", 1, 1 << 24);
  const LoraTraining t = lora_training(ctx, str("train_cdpo ", stage_name(po.loss, po.form)));
  const std::string base_dir = resolve_model_path(c);
  const std::string model_name = model_label(c, base_dir);
  const ScoredPairPaths paths = scored_pair_paths(ctx, model_name);
  const std::string out = adapter_dir(ctx, model_name, stage_name(po.loss, po.form));
  check_output_folder(out);
  const std::vector<data::DpoPairText> texts = data::read_dpo_json(paths.dpo);

  const ModelCheck checked = check_model_folder(base_dir);
  const text::Tokenizer& tok = checked.tokenizer;
  const auto eos = tok.eos_id();
  CTM_CHECK(eos.has_value(), base_dir, ": the tokenizer has no EOS token (the DPO sequences end with one)");
  const std::vector<TokenizedPair> tokenized = tokenize_pairs(tok, texts);
  std::vector<std::vector<float>> ce;
  if (po.loss == train::PreferenceLoss::CDPO) ce = rejected_ce_probs(paths.ce_scores, texts, tokenized);
  const TrainingPairs set = training_pairs(tokenized, po.loss == train::PreferenceLoss::CDPO ? &ce : nullptr,
                                           *eos, max_prompt, t.max_length);
  CTM_CHECK(!set.pairs.empty(), paths.dpo, ": no pair left to train on (", set.dropped,
            " dropped by the length limits)");
  const std::string what =
      str(stage_name(po.loss, po.form), " on ", set.pairs.size(), " pairs of ", paths.dpo, " (", set.dropped,
          " dropped by the length limits)",
          po.loss == train::PreferenceLoss::CDPO ? str(", weights from ", paths.ce_scores) : "");
  if (dry_run(ctx)) {
    int64_t longest = 0;
    for (const auto& p : set.pairs)
      longest = std::max<int64_t>(
          {longest, static_cast<int64_t>(p.chosen.size()), static_cast<int64_t>(p.rejected.size())});
    Plan plan("train_cdpo");
    plan.model(ctx, checked);
    plan_training(plan, ctx, checked, t, what, static_cast<int64_t>(set.pairs.size()), 2, longest);
    plan.add("outputs", str(out, " (training state in ", out, ".state)"));
    plan.resume_state(out, "replaced by the new adapter");
    plan.print(ctx);
    return 0;
  }
  spdlog::info("train_cdpo: {}, beta {}", what, po.beta);

  BaseModel base = load_base_model(ctx, t.fsdp);
  model::Transformer& model = *base.model;
  const train::ReferenceLogps reference = train::reference_logps(model, set.pairs, base.collective.get());
  const train::Split train_split{train::pair_lengths(set.pairs),
                                 train::preference_loss_fn(model, set.pairs, reference, po, *eos)};
  const Json info = {{"task", "train_cdpo"},
                     {"loss", train::preference_loss_name(po.loss)},
                     {"cdpo_loss", train::cdpo_form_name(po.form)},
                     {"beta", po.beta},
                     {"rpo_alpha", po.rpo_alpha},
                     {"dpo_data", paths.dpo},
                     {"ce_scores", po.loss == train::PreferenceLoss::CDPO ? paths.ce_scores : ""},
                     {"pairs", set.pairs.size()},
                     {"dropped_pairs", set.dropped}};
  train_adapter(ctx, base, t, train_split, train::Split{}, out, info);
  if (ctx.comm.rank() == 0) std::cout << "train_cdpo: adapter in " << out << std::endl;
  return 0;
}

}  // namespace ctm::tasks
