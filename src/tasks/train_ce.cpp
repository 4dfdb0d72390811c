// ctm train_ce (DESIGN.md §2 "CE models"): LoRA SFT of the positive model on the SFT file's "pos" responses
// and of the negative model on its "neg" responses (prepare_startup_data's file, or the release's file of the
// same shape). Text "Question: q\nAnswer: response" ("Problem: ... \nSolution: ..." for MATH), BOS where the
// tokenizer adds one, no EOS; the loss covers the tokens after the last "Answer:". The file's last
// --valid_examples examples validate, and the adapter of the best validation loss is kept. Writes PEFT
// adapters to checkpoints/{model}/{dataset}/sft/{pos,neg}/ (or --out/{pos,neg}).
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
#include "ctm/train/lm.hpp"
#include "ctm/train/lm_data.hpp"

namespace ctm::tasks {

void add_train_ce_options(po::options_description& desc) {
  LoraTrainingDefaults d;  // the release's CE settings
  d.r = 8;
  d.alpha = 16;
  d.dropout = 0.1;
  d.targets = "gate_proj,up_proj,down_proj";
  d.lr = 3e-4;
  d.schedule = "cosine";
  d.warmup_steps = 100;
  d.epochs = 1;
  d.batch_size = 6;  // 70B: --batch_size 2 --grad_accum 3
  d.weight_decay = 0.0;
  d.max_length = 1024;
  d.valid_examples = 300;
  d.eval_every = 200;
  add_lora_training_options(desc, d);
  desc.add_options()("sft_data", po::value<std::string>()->default_value(""),
                     "SFT file, ours or the release's (default: data/<model>/<dataset>.sft.<tag>.json)");
  add_dry_run_option(desc);
}

namespace {

struct SideData {
  std::vector<train::LmExample> train, valid;
  int64_t dropped = 0;
};

SideData side_examples(const std::vector<data::SftExample>& examples, const text::Tokenizer& tok,
                       data::DatasetKind kind, const LoraTraining& t, const std::string& what) {
  const data::PromptFormat fmt = data::prompt_format(kind);
  const std::string marker = data::python_strip(fmt.answer_prefix);  // "Answer:" / "Solution:"
  std::vector<train::LmExample> all;
  SideData out;
  for (const auto& e : examples) {
    auto ex = train::response_example(tok, fmt.question_prefix + e.question + fmt.answer_prefix + e.response,
                                      marker, /*add_eos=*/false, t.max_length);
    if (!ex || std::count(ex->is_target.begin(), ex->is_target.end(), 1) == 0) {
      ++out.dropped;
      continue;
    }
    all.push_back(std::move(*ex));
  }
  const int64_t n = static_cast<int64_t>(all.size());
  if (t.valid_examples >= n)
    throw UsageError(str("train_ce: --valid_examples ", t.valid_examples, " leaves no ", what,
                         " example to train on (", n, " in all)"));
  out.train.assign(all.begin(), all.end() - t.valid_examples);
  out.valid.assign(all.end() - t.valid_examples, all.end());
  return out;
}

}  // namespace

int run_train_ce(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("train_ce needs --dataset_name GSM8K|MATH|ARITH");
  const data::DatasetKind kind = data::parse_dataset(c.dataset_name);
  const LoraTraining t = lora_training(ctx, "train_ce");
  const std::string base_dir = resolve_model_path(c);
  const std::string model_name = model_label(c, base_dir);
  std::string sft_path = ctx.vm["sft_data"].as<std::string>();
  if (sft_path.empty()) sft_path = startup_data_paths(c, model_name, startup_tag(ctx, model_name)).sft;
  const std::string out = ctx.vm["out"].as<std::string>().empty() ? adapter_dir(ctx, model_name, "sft")
                                                                  : ctx.vm["out"].as<std::string>();
  for (const char* side : {"pos", "neg"}) check_output_folder(out + "/" + side);
  const data::SftData sft = data::read_sft_json(sft_path);

  const ModelCheck checked = check_model_folder(base_dir);
  const char* sides[] = {"pos", "neg"};
  SideData data[2];
  std::string what[2];
  for (int k = 0; k < 2; ++k) {
    data[k] = side_examples(k == 0 ? sft.pos : sft.neg, checked.tokenizer, kind, t, sides[k]);
    const SideData& d = data[k];
    what[k] = str(sides[k], " on ", d.train.size() + d.valid.size(), " examples of ", sft_path, " (",
                  d.train.size(), " train, ", d.valid.size(), " validation, ", d.dropped,
                  " without a response dropped)");
  }
  if (dry_run(ctx)) {
    Plan plan("train_ce");
    plan.model(ctx, checked);
    for (int k = 0; k < 2; ++k) {
      const std::vector<int64_t> lengths = train::example_lengths(data[k].train);
      plan_training(plan, ctx, checked, t, what[k], static_cast<int64_t>(lengths.size()), 1,
                    *std::max_element(lengths.begin(), lengths.end()));
      plan.resume_state(out + "/" + sides[k], "replaced by the new adapter");
    }
    plan.add("outputs", str(out, "/pos, ", out, "/neg (training state in <adapter>.state)"));
    plan.print(ctx);
    return 0;
  }

  BaseModel base = load_base_model(ctx, t.fsdp);
  model::Transformer& model = *base.model;
  const int32_t pad = checked.tokenizer.eos_id().value_or(0);
  for (int k = 0; k < 2; ++k) {
    const SideData& d = data[k];
    spdlog::info("train_ce {}", what[k]);
    LoraTraining side_t = t;
    side_t.trainer.label = str("train_ce ", sides[k]);
    const train::Split train_split{train::example_lengths(d.train), train::lm_loss_fn(model, d.train, pad)};
    const train::Split valid_split{train::example_lengths(d.valid), train::lm_loss_fn(model, d.valid, pad)};
    const Json info = {{"task", "train_ce"},
                       {"side", sides[k]},
                       {"sft_data", sft_path},
                       {"dataset_name", c.dataset_name},
                       {"train_examples", d.train.size()},
                       {"valid_examples", d.valid.size()},
                       {"dropped_examples", d.dropped}};
    train_adapter(ctx, base, side_t, train_split, valid_split, out + "/" + sides[k], info);
  }
  if (ctx.comm.rank() == 0) std::cout << "train_ce: adapters in " << out << "/pos and " << out << "/neg\n";
  return 0;
}

}  // namespace ctm::tasks
