// ctm pretrain: the embedded default's model. Trains a byte-level BPE tokenizer on the dataset's training
// split, then a small Llama-architecture model from scratch on few-shot-shaped sequences of its worked
// solutions (loss on the solutions only), with the generic trainer (AdamW, warm-up + cosine, clipping,
// accumulation, validation, checkpoints with resume), and saves an ordinary Hugging Face folder. Rerunning
// the same command after a stop resumes from the checkpoint; with several ranks it trains data-parallel.
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <tuple>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/dist/collective.hpp"
#include "ctm/dist/device.hpp"
#include "ctm/io/json.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/text/bpe_trainer.hpp"
#include "ctm/train/lm.hpp"
#include "ctm/train/lm_data.hpp"
#include "ctm/train/trainer.hpp"

namespace ctm::tasks {
namespace {

constexpr const char* kBos = "<|begin_of_text|>";
constexpr const char* kEos = "<|end_of_text|>";

template <class T>
T opt(const TaskContext& ctx, const char* name) {
  return ctx.vm[name].as<T>();
}

// Every numeric option's range, checked before the tokenizer or the model is built.
void check_ranges(const TaskContext& ctx) {
  constexpr int64_t kBig = int64_t{1} << 40;
  for (const auto& [name, lo, hi] : std::initializer_list<std::tuple<const char*, int64_t, int64_t>>{
           {"train_examples", -1, kBig},
           {"valid_examples", 0, kBig},
           {"hidden_size", 8, 1 << 16},
           {"num_layers", 1, 1024},
           {"num_heads", 1, 1024},
           {"intermediate_size", 1, 1 << 20},
           {"max_position_embeddings", 16, 1 << 24},
           {"seq_len", 16, 1 << 24},
           {"batch_size", 1, 1 << 20},
           {"grad_accum", 1, 1 << 20},
           {"steps", 0, kBig},
           {"epochs", 1, 1 << 20},
           {"warmup_steps", 0, kBig},
           {"eval_every", 0, kBig},
           {"checkpoint_every", 0, kBig},
           {"log_every", 0, kBig}})
    int_option(ctx, name, lo, hi);
  const int32_t vocab = opt<int32_t>(ctx, "vocab_size");
  if (vocab < 260 || vocab > (1 << 20))
    throw UsageError(str("--vocab_size must be in [260, 1048576] (got ", vocab, ")"));
  real_option(ctx, "lr", 0, 10);
  real_option(ctx, "min_lr_ratio", 0, 1);
  real_option(ctx, "weight_decay", 0, 10);
  real_option(ctx, "max_grad_norm", 0, 1e9);
}

}  // namespace

void add_pretrain_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("train_file", po::value<std::string>()->default_value(""),
     "training split (default: the dataset's, e.g. data/arith/train.jsonl)")
    ("out", po::value<std::string>()->default_value(""),
     "model folder to write (default: --model_path, else data/models/<model_name>)")
    ("train_examples", po::value<int64_t>()->default_value(-1), "use only the first N problems of the split (-1 = all)")
    ("valid_examples", po::value<int64_t>()->default_value(200), "problems held out (the split's last N) for validation")
    ("vocab_size", po::value<int32_t>()->default_value(768), "BPE vocabulary (256 bytes + merges + 2 special tokens)")
    ("hidden_size", po::value<int64_t>()->default_value(256), "model width")
    ("num_layers", po::value<int64_t>()->default_value(4), "decoder layers")
    ("num_heads", po::value<int64_t>()->default_value(4), "attention heads (as many key/value heads)")
    ("intermediate_size", po::value<int64_t>()->default_value(688), "SwiGLU width")
    ("max_position_embeddings", po::value<int64_t>()->default_value(1024), "context length in config.json")
    ("seq_len", po::value<int64_t>()->default_value(640), "tokens per packed training sequence")
    ("batch_size", po::value<int64_t>()->default_value(8), "sequences per micro-batch")
    ("grad_accum", po::value<int64_t>()->default_value(1), "micro-batches per update (per rank)")
    ("steps", po::value<int64_t>()->default_value(600), "optimizer updates (0: --epochs over the data)")
    ("epochs", po::value<int64_t>()->default_value(1), "epochs when --steps is 0")
    ("lr", po::value<double>()->default_value(2e-3), "peak learning rate")
    ("min_lr_ratio", po::value<double>()->default_value(0.1), "cosine floor as a share of the peak")
    ("warmup_steps", po::value<int64_t>()->default_value(30), "linear warm-up updates")
    ("weight_decay", po::value<double>()->default_value(0.01), "AdamW weight decay (matrices only)")
    ("max_grad_norm", po::value<double>()->default_value(1.0), "gradient clipping (global L2 norm; 0 = off)")
    ("eval_every", po::value<int64_t>()->default_value(100), "updates between validation passes")
    ("checkpoint_every", po::value<int64_t>()->default_value(100), "updates between checkpoints")
    ("log_every", po::value<int64_t>()->default_value(10), "updates between log lines");
  // clang-format on
}

int run_pretrain(const TaskContext& ctx) {
  const auto& common = ctx.common;
  if (common.model_name.empty()) throw UsageError("pretrain needs --model_name (e.g. tiny)");
  const auto kind = data::parse_dataset(common.dataset_name.empty() ? "ARITH" : common.dataset_name);
  const bool rank0 = ctx.comm.rank() == 0;
  const auto started = std::chrono::steady_clock::now();

  std::string out = opt<std::string>(ctx, "out");
  if (out.empty())
    out = !common.model_path.empty() ? common.model_path : data_dir() + "/models/" + common.model_name;
  check_output_folder(out);
  check_ranges(ctx);
  std::string train_file = opt<std::string>(ctx, "train_file");
  if (train_file.empty()) train_file = data::train_split_path(kind, data_dir());
  const std::string ckpt_dir = output_path(common, "checkpoints/" + common.model_name + "/pretrain");

  // Problems: the split's last valid_examples are the validation set.
  auto problems = data::load_problems(train_file, opt<int64_t>(ctx, "train_examples"));
  const int64_t n_valid = opt<int64_t>(ctx, "valid_examples");
  if (n_valid < 0 || n_valid >= static_cast<int64_t>(problems.size()))
    throw UsageError(
        str("--valid_examples ", n_valid, " must be in [0, ", problems.size(), ") for ", train_file));
  std::vector<data::Problem> valid_problems(problems.end() - n_valid, problems.end());
  problems.resize(problems.size() - n_valid);

  // Tokenizer: trained once and kept beside the checkpoint, so a resumed run uses the very same vocabulary.
  text::BpeTrainerOptions bpe;
  bpe.vocab_size = opt<int32_t>(ctx, "vocab_size");
  bpe.split_digits = true;
  bpe.bos_token = kBos;
  bpe.eos_token = kEos;
  bpe.add_bos_token = false;  // the release tokenizes prompts without BOS
  const std::string tok_path = ckpt_dir + "/tokenizer.json";
  std::string tok_text;
  if (rank0) {
    if (file_exists(tok_path)) {
      tok_text = read_file(tok_path);
    } else {
      std::vector<std::string> texts;
      texts.reserve(problems.size());
      for (const auto& p : problems) {
        std::string t;
        for (const auto& piece : train::qa_pieces(kind, p, true)) t += piece.text;
        texts.push_back(std::move(t));
      }
      const auto t0 = std::chrono::steady_clock::now();
      tok_text = text::train_bpe(texts, bpe).dump(2);
      write_file_atomic(tok_path, tok_text);
      spdlog::info("pretrain: BPE tokenizer ({} tokens) trained on {} texts in {:.1f} s", bpe.vocab_size,
                   texts.size(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  tok_text = ctx.comm.broadcast(tok_text);
  const Json tok_json = parse_json(tok_text, tok_path);
  const Json tok_config = text::make_tokenizer_config(bpe);
  const auto tok = text::Tokenizer::from_json(tok_json, &tok_config, tok_path);
  const int32_t eos = tok.eos_id().value();

  // Sequences shaped like the few-shot prompt.
  train::PackOptions pack;
  pack.max_tokens = opt<int64_t>(ctx, "seq_len");
  int64_t skipped = 0;
  const auto train_seqs = train::pack_qa_sequences(problems, kind, tok, pack, common.seed, &skipped);
  const auto valid_seqs = train::pack_qa_sequences(valid_problems, kind, tok, pack, common.seed + 1);
  int64_t train_tokens = 0, target_tokens = 0;
  for (const auto& s : train_seqs) {
    train_tokens += static_cast<int64_t>(s.tokens.size());
    for (auto t : s.is_target) target_tokens += t;
  }
  spdlog::info(
      "pretrain: {} problems -> {} sequences ({} tokens, {} in the loss; {} too long skipped), {} "
      "validation sequences",
      problems.size(), train_seqs.size(), train_tokens, target_tokens, skipped, valid_seqs.size());

  // The model.
  model::ModelConfig cfg;
  cfg.family = model::Family::Llama;
  cfg.hidden_size = opt<int64_t>(ctx, "hidden_size");
  cfg.num_layers = opt<int64_t>(ctx, "num_layers");
  cfg.num_heads = opt<int64_t>(ctx, "num_heads");
  cfg.num_kv_heads = cfg.num_heads;
  if (cfg.num_heads <= 0 || cfg.hidden_size % cfg.num_heads != 0)
    throw UsageError(
        str("--hidden_size ", cfg.hidden_size, " must be a multiple of --num_heads ", cfg.num_heads));
  cfg.head_dim = cfg.hidden_size / cfg.num_heads;
  cfg.intermediate_size = opt<int64_t>(ctx, "intermediate_size");
  cfg.vocab_size = tok.vocab_size();
  cfg.rms_norm_eps = 1e-5;
  cfg.rope_theta = 10000.0;
  cfg.max_position_embeddings = opt<int64_t>(ctx, "max_position_embeddings");
  if (cfg.max_position_embeddings < pack.max_tokens)
    throw UsageError("--max_position_embeddings must be at least --seq_len");
  cfg.bos_token_id = tok.bos_id();
  cfg.eos_token_ids = {eos};
  cfg.torch_dtype = "float32";
  const auto device = rank_device(common, ctx.comm);
  auto model = model::init_model(cfg, common.seed, device, torch::kFloat32);
  spdlog::info("pretrain: {} parameters (d {}, {} layers, {} heads, SwiGLU {}, vocab {})",
               cfg.num_parameters(), cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size,
               cfg.vocab_size);

  train::TrainerOptions topt;
  topt.label = "pretrain";
  topt.lr = opt<double>(ctx, "lr");
  topt.adamw.beta1 = 0.9;
  topt.adamw.beta2 = 0.95;
  topt.adamw.weight_decay = opt<double>(ctx, "weight_decay");
  topt.schedule.kind = train::ScheduleKind::Cosine;
  topt.schedule.warmup_steps = opt<int64_t>(ctx, "warmup_steps");
  topt.schedule.min_lr_ratio = opt<double>(ctx, "min_lr_ratio");
  topt.max_grad_norm = opt<double>(ctx, "max_grad_norm");
  topt.micro_batch_size = opt<int64_t>(ctx, "batch_size");
  topt.grad_accum_steps = opt<int64_t>(ctx, "grad_accum");
  topt.max_steps = opt<int64_t>(ctx, "steps");
  topt.epochs = opt<int64_t>(ctx, "epochs");
  topt.eval_every = opt<int64_t>(ctx, "eval_every");
  topt.checkpoint_every = opt<int64_t>(ctx, "checkpoint_every");
  topt.log_every = opt<int64_t>(ctx, "log_every");
  topt.checkpoint_dir = ckpt_dir;
  topt.seed = common.seed;
  if (topt.max_steps <= 0) topt.max_steps = -1;

  // Data parallel (every weight trained, so none is sharded): gradients summed where they live (NCCL for
  // CUDA).
  const auto comm = dist::device_comm(ctx.comm, device);
  dist::CommCollective collective(*comm);
  train::Trainer trainer(train::full_parameters(*model), topt, ctx.comm.size() > 1 ? &collective : nullptr);
  train::Split train_split{train::example_lengths(train_seqs), train::lm_loss_fn(*model, train_seqs, eos)};
  train::Split valid_split{train::example_lengths(valid_seqs), train::lm_loss_fn(*model, valid_seqs, eos)};
  const auto result = trainer.fit(train_split, valid_split);
  if (result.stopped)
    throw Stopped{str("the checkpoint of step ", result.steps_done, " is in ", ckpt_dir,
                      "; rerun the same command to resume")};
  model->set_requires_grad(false);
  model->set_training(false);

  if (rank0) {
    // The folder is replaced as a whole: a full disk half-way leaves the old model intact.
    AtomicDir folder(out);
    const std::string& dir = folder.path();
    model::save_model(*model, dir);
    write_file_atomic(dir + "/tokenizer.json", tok_text);
    write_json_file_atomic(dir + "/tokenizer_config.json", tok_config);
    write_json_file_atomic(
        dir + "/generation_config.json",
        Json{{"bos_token_id", *tok.bos_id()}, {"eos_token_id", eos}, {"do_sample", false}});
    // How it was made: the resolved options and the loss curve's end points.
    Json info = {{"dataset", data::dataset_name(kind)},
                 {"train_file", train_file},
                 {"train_problems", problems.size()},
                 {"valid_problems", valid_problems.size()},
                 {"train_sequences", train_seqs.size()},
                 {"train_tokens", train_tokens},
                 {"seed", common.seed},
                 {"steps", result.steps_done},
                 {"parameters", cfg.num_parameters()}};
    for (const auto& [k, v] : ctx.vm) {
      if (v.value().type() == typeid(int64_t)) info["options"][k] = v.as<int64_t>();
      if (v.value().type() == typeid(int32_t)) info["options"][k] = v.as<int32_t>();
      if (v.value().type() == typeid(double)) info["options"][k] = v.as<double>();
    }
    if (!result.history.empty()) info["final_train_loss"] = result.history.back().loss;
    if (result.last_valid_loss) info["final_valid_loss"] = *result.last_valid_loss;
    write_json_file_atomic(dir + "/training_info.json", info);
    folder.commit();
    spdlog::info("pretrain: wrote {} ({:.0f} s in all)", out,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  return 0;
}

}  // namespace ctm::tasks
