#include "ctm/tasks/lora_training.hpp"

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/dist/collective.hpp"
#include "ctm/dist/device.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/train/lm.hpp"

namespace ctm::tasks {
namespace {

// metrics.jsonl: one line per logging step (the mean over its updates), with TRL's names.
std::string metrics_jsonl(const train::TrainResult& result, int64_t log_every) {
  std::string out;
  const auto& h = result.history;
  const size_t window = static_cast<size_t>(std::max<int64_t>(1, log_every));
  for (size_t begin = 0; begin < h.size(); begin += window) {
    const size_t end = std::min(h.size(), begin + window);
    double loss = 0, grad_norm = 0;
    std::map<std::string, double> sums;
    std::optional<double> valid;
    for (size_t i = begin; i < end; ++i) {
      loss += h[i].loss;
      grad_norm += h[i].grad_norm;
      for (const auto& [k, v] : h[i].metrics) sums[k] += v;
      if (h[i].valid_loss) valid = h[i].valid_loss;
    }
    const double n = static_cast<double>(end - begin);
    Json line = {{"step", h[end - 1].step},
                 {"epoch", h[end - 1].epoch},
                 {"loss", loss / n},
                 {"lr", h[end - 1].lr},
                 {"grad_norm", grad_norm / n}};
    for (const auto& [k, v] : sums) line[k] = v / n;
    if (valid) line["eval_loss"] = *valid;
    out += line.dump() + "\n";
  }
  return out;
}

}  // namespace

LoraTrainingDefaults cdpo_training_defaults() {
  LoraTrainingDefaults d;
  d.r = 16;
  d.alpha = 32;
  d.dropout = 0.0;
  d.lr = 4e-5;
  d.schedule = "linear";
  d.warmup_ratio = 0.1;
  d.epochs = 3;
  d.batch_size = 2;
  d.grad_accum = 4;
  d.weight_decay = 0.01;
  d.max_length = 1024;
  d.shuffle_seed = 33;
  return d;
}

void add_lora_training_options(po::options_description& desc, const LoraTrainingDefaults& d) {
  // clang-format off
  desc.add_options()
    ("out", po::value<std::string>()->default_value(""),
     "adapter folder to write (default: <output_dir>/checkpoints/<model>/<dataset>/<stage>)")
    ("lora_r", po::value<int64_t>()->default_value(d.r), "LoRA rank")
    ("lora_alpha", po::value<double>()->default_value(d.alpha), "LoRA alpha (scaling alpha / r)")
    ("lora_dropout", po::value<double>()->default_value(d.dropout), "LoRA dropout")
    ("lora_targets", po::value<std::string>()->default_value(d.targets), "projections with adapters (comma list)")
    ("lr", po::value<double>()->default_value(d.lr), "peak learning rate (AdamW)")
    ("lr_scheduler", po::value<std::string>()->default_value(d.schedule), "linear | cosine | constant (after warm-up)")
    ("warmup_steps", po::value<int64_t>()->default_value(d.warmup_steps), "linear warm-up updates (wins over the ratio)")
    ("warmup_ratio", po::value<double>()->default_value(d.warmup_ratio), "warm-up as a share of all updates")
    ("epochs", po::value<int64_t>()->default_value(d.epochs), "passes over the training data")
    ("max_steps", po::value<int64_t>()->default_value(-1), "stop after N updates (-1: the epochs decide)")
    ("batch_size", po::value<int64_t>()->default_value(d.batch_size), "examples per micro-batch (per rank)")
    ("grad_accum", po::value<int64_t>()->default_value(d.grad_accum), "micro-batches per update (per rank)")
    ("weight_decay", po::value<double>()->default_value(d.weight_decay), "AdamW weight decay")
    ("max_grad_norm", po::value<double>()->default_value(1.0), "gradient clipping (global L2 norm; 0 = off)")
    ("max_length", po::value<int64_t>()->default_value(d.max_length), "most tokens of a training sequence")
    ("valid_examples", po::value<int64_t>()->default_value(d.valid_examples),
     "examples held out for validation (the data's last N); the best validation loss is kept")
    ("eval_every", po::value<int64_t>()->default_value(d.eval_every), "updates between validations (0: at the end)")
    ("log_every", po::value<int64_t>()->default_value(10), "updates per logging step (metrics.jsonl, log line)")
    ("checkpoint_every", po::value<int64_t>()->default_value(100), "updates between checkpoints (0: at the end and on stop)")
    ("shuffle_seed", po::value<int64_t>()->default_value(d.shuffle_seed), "seed of the data order")
    ("fsdp", po::value<std::string>()->default_value("auto"),
     "on | off | auto (on with more than one rank): shard the frozen base over the ranks, each keeping 1/R of "
     "every weight and gathering a layer when it runs (docs/distributed.md)");
  // clang-format on
}

void reject_lora_path(const TaskContext& ctx, const std::string& task) {
  if (!ctx.common.lora_path.empty())
    throw UsageError(
        str(task, " starts from the base model and does not use --lora_path; to start from an adapter, ",
            "merge it into a base folder first (ctm merge) and pass that as --model_path"));
}

LoraTraining lora_training(const TaskContext& ctx, const std::string& label) {
  constexpr int64_t kBig = int64_t{1} << 40;
  reject_lora_path(ctx, label);
  LoraTraining t;
  t.lora.r = int_option(ctx, "lora_r", 1, 4096);
  t.lora.alpha = real_option(ctx, "lora_alpha", 1e-9, 1e6);
  t.lora.dropout = real_option(ctx, "lora_dropout", 0, 0.99);
  t.lora.target_modules = split_commas(ctx.vm["lora_targets"].as<std::string>());
  train::TrainerOptions& o = t.trainer;
  o.label = label;
  o.lr = real_option(ctx, "lr", 0, 10);
  o.schedule.kind = train::parse_schedule(ctx.vm["lr_scheduler"].as<std::string>());
  o.schedule.warmup_steps = int_option(ctx, "warmup_steps", 0, kBig);
  o.schedule.warmup_ratio = real_option(ctx, "warmup_ratio", 0, 1);
  o.epochs = int_option(ctx, "epochs", 1, 1 << 20);
  o.max_steps = int_option(ctx, "max_steps", -1, kBig);
  if (o.max_steps == 0) throw UsageError("--max_steps must be >= 1, or -1 (got 0)");
  o.micro_batch_size = int_option(ctx, "batch_size", 1, 1 << 20);
  o.grad_accum_steps = int_option(ctx, "grad_accum", 1, 1 << 20);
  o.adamw.weight_decay = real_option(ctx, "weight_decay", 0, 10);
  o.max_grad_norm = real_option(ctx, "max_grad_norm", 0, 1e9);
  o.eval_every = int_option(ctx, "eval_every", 0, kBig);
  o.log_every = int_option(ctx, "log_every", 1, kBig);
  o.checkpoint_every = int_option(ctx, "checkpoint_every", 0, kBig);
  o.seed = static_cast<uint64_t>(int_option(ctx, "shuffle_seed", 0, kBig));
  t.max_length = int_option(ctx, "max_length", 2, 1 << 24);
  t.valid_examples = int_option(ctx, "valid_examples", 0, kBig);
  o.keep_best = t.valid_examples > 0;
  t.fsdp = dist::fsdp_enabled(ctx.vm["fsdp"].as<std::string>(), ctx.comm);
  return t;
}

BaseModel load_base_model(const TaskContext& ctx, bool sharded) {
  BaseModel base;
  base.dir = resolve_model_path(ctx.common);
  const torch::Device device = rank_device(ctx.common, ctx.comm);
  base.comm = dist::device_comm(ctx.comm, device);
  if (ctx.comm.size() > 1) base.collective = std::make_shared<dist::CommCollective>(*base.comm);
  if (sharded) {
    base.sharded =
        std::make_shared<dist::ShardedModel>(base.dir, device, model::default_dtype(device), base.comm);
    base.model = base.sharded->model();
    const dist::ShardStats s = base.sharded->stats();
    spdlog::info(
        "base model sharded over {} ranks: {} B of its {} B of weights resident on rank {} (largest "
        "gathered block {} B)",
        base.comm->size(), s.resident_bytes, s.model_bytes, ctx.comm.rank(), s.largest_block_bytes);
  } else {
    base.model = model::load_model(base.dir, device, model::default_dtype(device));
    int64_t bytes = 0;
    for (const auto& [name, w] : base.model->named_parameters()) bytes += static_cast<int64_t>(w.nbytes());
    spdlog::info("base model whole on rank {}: {} B of weights resident", ctx.comm.rank(), bytes);
  }
  return base;
}

std::string adapter_dir(const TaskContext& ctx, const std::string& model, const std::string& name) {
  const std::string out = ctx.vm["out"].as<std::string>();
  if (!out.empty()) return out;
  return output_path(ctx.common, "checkpoints/" + model + "/" + ctx.common.dataset_name + "/" + name);
}

train::TrainResult train_adapter(const TaskContext& ctx, BaseModel& base, const LoraTraining& t,
                                 const train::Split& train_split, const train::Split& valid,
                                 const std::string& out, const Json& info) {
  check_output_folder(out);
  model::Transformer& model = *base.model;
  model::add_lora(model, t.lora, ctx.common.seed);
  train::TrainerOptions opts = t.trainer;
  opts.checkpoint_dir = out + ".state";
  train::Trainer trainer(train::lora_parameters(model), opts, base.collective.get());
  train::TrainResult result = trainer.fit(train_split, valid);
  if (result.stopped)
    throw Stopped{str("the checkpoint of update ", result.steps_done, " of ", result.total_steps, " is in ",
                      opts.checkpoint_dir, "; rerun the same command to resume")};
  if (ctx.comm.rank() == 0) {
    AtomicDir folder(out);
    model::save_peft(model, folder.path(), base.dir);
    write_file_atomic(folder.path() + "/metrics.jsonl", metrics_jsonl(result, opts.log_every));
    Json full = info;
    full["base_model"] = base.dir;
    full["updates"] = result.steps_done;
    if (result.best_valid_loss) full["best_valid_loss"] = *result.best_valid_loss;
    if (!result.history.empty()) full["final_train_loss"] = result.history.back().loss;
    full["ctm_version"] = CTM_VERSION;
    write_json_file_atomic(folder.path() + "/training_info.json", full);
    folder.commit();
    spdlog::info("{}: adapter written to {}", opts.label, out);
  }
  ctx.comm.barrier();
  return result;
}

}  // namespace ctm::tasks
