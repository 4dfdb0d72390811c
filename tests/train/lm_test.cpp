// Language-model training on the real Transformer: loss masks from text pieces, few-shot packing, the masked
// loss against full logits, exact resume, and `ctm pretrain` end to end on a small configuration.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "ctm/core/atomic_file.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/io/json.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/text/bpe_trainer.hpp"
#include "ctm/text/tokenizer.hpp"
#include "ctm/train/lm.hpp"
#include "ctm/train/lm_data.hpp"
#include "ctm/train/trainer.hpp"

namespace ctm::train {
namespace {

const std::string kArithTrain = std::string(CTM_SOURCE_DIR) + "/data/arith/train.jsonl";

struct Fixture {
  std::vector<data::Problem> problems;
  text::Tokenizer tok;
};

// 300 ARITH problems and a 300-token BPE trained on them (shared by the tests: training takes a moment).
const Fixture& fixture() {
  static const Fixture f = [] {
    auto problems = data::load_problems(kArithTrain, 300);
    std::vector<std::string> texts;
    for (const auto& p : problems) {
      std::string t;
      for (const auto& piece : qa_pieces(data::DatasetKind::ARITH, p, true)) t += piece.text;
      texts.push_back(t);
    }
    text::BpeTrainerOptions o;
    o.vocab_size = 300;
    o.bos_token = "<|begin_of_text|>";
    o.eos_token = "<|end_of_text|>";
    const auto cfg = text::make_tokenizer_config(o);
    return Fixture{problems, text::Tokenizer::from_json(text::train_bpe(texts, o), &cfg)};
  }();
  return f;
}

std::string decode_where(const text::Tokenizer& tok, const LmExample& ex, bool targets) {
  std::vector<int32_t> ids;
  for (size_t t = 0; t < ex.tokens.size(); ++t)
    if (static_cast<bool>(ex.is_target[t]) == targets) ids.push_back(ex.tokens[t]);
  return tok.decode(ids);
}

TEST(LmData, PiecesMarkTheTargetTokens) {
  const auto& f = fixture();
  const auto& p = f.problems[0];
  const auto ex = tokenize_pieces(f.tok, qa_pieces(data::DatasetKind::ARITH, p, /*first=*/false));
  EXPECT_EQ(f.tok.decode(ex.tokens), "Question: " + p.question + "\nAnswer: " + p.solution + "\n\n");
  // Targets: "Question:" and " solution\n\n"; the rest is the question.
  EXPECT_EQ(decode_where(f.tok, ex, true), "Question: " + p.solution + "\n\n");
  EXPECT_EQ(decode_where(f.tok, ex, false), " " + p.question + "\nAnswer:");
  const auto first = tokenize_pieces(f.tok, qa_pieces(data::DatasetKind::ARITH, p, /*first=*/true));
  EXPECT_EQ(decode_where(f.tok, first, true), " " + p.solution + "\n\n");
}

// The CE models' and +SFT's examples: loss on the response after the last "Answer:" and on the EOS only.
TEST(LmData, ResponseExampleMasksEverythingBeforeTheLastMarker) {
  const auto& f = fixture();
  const auto& p = f.problems[1];
  const std::string prompt = "Question: 1 + 1\nAnswer: 2\n\nQuestion: " + p.question + "\nAnswer:";
  const auto ex = response_example(f.tok, prompt + " " + p.solution, "Answer:", /*add_eos=*/true, 0);
  ASSERT_TRUE(ex.has_value());
  ASSERT_EQ(ex->tokens.size(), ex->is_target.size());
  EXPECT_EQ(ex->tokens.back(), *f.tok.eos_id());
  EXPECT_EQ(ex->is_target.back(), 1);
  auto masked = *ex;
  masked.tokens.pop_back();
  masked.is_target.pop_back();
  EXPECT_EQ(decode_where(f.tok, masked, true), " " + p.solution);
  EXPECT_EQ(decode_where(f.tok, masked, false), prompt);
  // No EOS: the mask ends with the response; a cap keeps the first tokens; no marker or nothing after it:
  // none.
  const auto no_eos = response_example(f.tok, prompt + " " + p.solution, "Answer:", false, 0);
  EXPECT_EQ(no_eos->tokens.size(), ex->tokens.size() - 1);
  const auto capped = response_example(f.tok, prompt + " " + p.solution, "Answer:", true, 5);
  EXPECT_EQ(capped->tokens, std::vector<int32_t>(ex->tokens.begin(), ex->tokens.begin() + 5));
  EXPECT_FALSE(response_example(f.tok, p.question, "Answer:", true, 0).has_value());
  EXPECT_FALSE(response_example(f.tok, prompt, "Answer:", true, 0).has_value());
}

TEST(LmData, PackedSequencesAreFewShotShapedAndCoverEveryProblem) {
  const auto& f = fixture();
  PackOptions o;
  o.max_tokens = 1024;
  int64_t skipped = -1;
  const auto seqs = pack_qa_sequences(f.problems, data::DatasetKind::ARITH, f.tok, o, 3, &skipped);
  EXPECT_EQ(skipped, 0);
  size_t examples = 0;
  for (const auto& s : seqs) {
    EXPECT_LE(s.tokens.size(), 1024u);
    const auto text = f.tok.decode(s.tokens);
    EXPECT_EQ(text.rfind("Question: ", 0), 0u) << text;
    ASSERT_GE(text.size(), 11u);
    EXPECT_EQ(text.substr(text.size() - 11), "\n\nQuestion:") << text;
    for (size_t pos = 0; (pos = text.find("\nAnswer: ", pos)) != std::string::npos; ++pos) ++examples;
  }
  EXPECT_EQ(examples, f.problems.size());
  EXPECT_GT(seqs.size(), 1u);
  EXPECT_LT(seqs.size(), f.problems.size() / 2);  // several problems per sequence
  // Deterministic in the seed.
  const auto again = pack_qa_sequences(f.problems, data::DatasetKind::ARITH, f.tok, o, 3);
  ASSERT_EQ(again.size(), seqs.size());
  EXPECT_EQ(again[0].tokens, seqs[0].tokens);
}

std::shared_ptr<model::Transformer> small_model(const text::Tokenizer& tok, uint64_t seed) {
  model::ModelConfig cfg;
  cfg.hidden_size = 32;
  cfg.num_layers = 2;
  cfg.num_heads = 4;
  cfg.num_kv_heads = 2;
  cfg.head_dim = 8;
  cfg.intermediate_size = 48;
  cfg.vocab_size = tok.vocab_size();
  cfg.max_position_embeddings = 512;
  return model::init_model(cfg, seed, torch::kCPU, torch::kFloat32);
}

TEST(LmLoss, MaskedLossEqualsFullLogitsComputation) {
  const auto& f = fixture();
  auto model = small_model(f.tok, 1);
  const auto a = tokenize_pieces(f.tok, qa_pieces(data::DatasetKind::ARITH, f.problems[1], true));
  const auto b = tokenize_pieces(f.tok, qa_pieces(data::DatasetKind::ARITH, f.problems[2], false));
  const auto batch = collate_lm({&a, &b}, 0);
  torch::NoGradGuard no_grad;
  const auto terms = causal_lm_loss(*model, batch);
  // Independently: full [B, T, V] logits, float64 log-softmax, every target by index.
  model::CausalAttention attn;
  const auto logp =
      torch::log_softmax(model->forward(batch.ids_BT, batch.positions_BT, attn).to(torch::kFloat64), -1);
  double want = 0.0;
  int64_t n = 0;
  for (int bi = 0; bi < 2; ++bi) {
    const auto& ex = bi == 0 ? a : b;
    for (size_t t = 0; t + 1 < ex.tokens.size(); ++t) {
      if (!ex.is_target[t + 1]) continue;
      want -= logp[bi][static_cast<int64_t>(t)][ex.tokens[t + 1]].item<double>();
      ++n;
    }
  }
  EXPECT_EQ(terms.count, static_cast<double>(n));
  const double got = terms.sum.item<double>();
  EXPECT_NEAR(got, want, 1e-5 * want) << "got " << got << " want " << want;
}

TEST(LmTrainer, TransformerResumeEqualsUninterruptedRun) {
  const auto& f = fixture();
  PackOptions po;
  po.max_tokens = 400;
  std::vector<data::Problem> subset(f.problems.begin(), f.problems.begin() + 60);
  const auto seqs = pack_qa_sequences(subset, data::DatasetKind::ARITH, f.tok, po, 1);
  TrainerOptions o;
  o.lr = 3e-3;
  o.adamw.weight_decay = 0.01;
  o.schedule.warmup_steps = 2;
  o.micro_batch_size = 2;
  o.grad_accum_steps = 2;
  o.max_steps = 8;
  o.log_every = 0;
  const auto dir = testing::TempDir() + "/ctm_lm_resume_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  auto train_once = [&](uint64_t init_seed, const std::string& ckpt, std::function<bool()> stop) {
    auto model = small_model(f.tok, init_seed);
    auto oo = o;
    oo.checkpoint_dir = ckpt;
    oo.should_stop = std::move(stop);
    Trainer trainer(full_parameters(*model), oo);
    const auto result = trainer.fit(Split{example_lengths(seqs), lm_loss_fn(*model, seqs, 0)}, Split{});
    return std::make_pair(model, result);
  };
  const auto [straight, full] = train_once(7, "", [] { return false; });
  EXPECT_LT(full.history.back().loss, full.history.front().loss);
  int polls = 0;
  const auto [first, part] = train_once(7, dir, [&polls] { return ++polls == 4; });
  EXPECT_TRUE(part.stopped);
  EXPECT_EQ(part.steps_done, 4);
  const auto [second, rest] = train_once(123, dir, [] { return false; });
  EXPECT_TRUE(rest.resumed);
  EXPECT_EQ(rest.steps_done, 8);
  const auto pa = straight->named_parameters(), pb = second->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    const double err = (pa[i].second - pb[i].second).abs().max().item<double>();
    EXPECT_EQ(err, 0.0) << pa[i].first << " differs by " << err;
  }
}

bool binary_available() {
  struct stat st;
  return std::string(CTM_BINARY).size() > 0 && ::stat(CTM_BINARY, &st) == 0;
}

TEST(PretrainTask, ShortRunWritesALoadableModelAndLossDecreases) {
  if (!binary_available()) GTEST_SKIP() << "ctm binary not built in this configuration";
  const auto dir = testing::TempDir() + "/ctm_pretrain_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const std::string cmd =
      std::string(CTM_BINARY) + " pretrain --model_name tiny-test --dataset_name ARITH" + " --train_file " +
      kArithTrain + " --output_dir " + dir + " --out " + dir + "/model" +
      " --train_examples 400 --valid_examples 40 --vocab_size 300 --hidden_size 32" +
      " --num_layers 2 --num_heads 2 --intermediate_size 64 --seq_len 512 --batch_size 4" +
      " --grad_accum 2 --steps 24 --warmup_steps 4 --lr 1e-2 --eval_every 12" +
      " --checkpoint_every 12 --log_level warn";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                           "generation_config.json"})
    EXPECT_TRUE(file_exists(dir + "/model/" + file)) << file;
  const auto tok = text::Tokenizer::load(dir + "/model");
  auto model = model::load_model(dir + "/model", torch::kCPU, torch::kFloat32);
  EXPECT_EQ(model->config().vocab_size, tok.vocab_size());
  EXPECT_EQ(model->config().hidden_size, 32);
  // A digit is a token of its own.
  EXPECT_EQ(tok.encode("2024", false).size(), 4u);

  const auto state = read_json_file(dir + "/checkpoints/tiny-test/pretrain/trainer_state.json");
  const auto& history = state.at("history");
  ASSERT_EQ(history.size(), 24u);
  const double first = history[0].at("loss").get<double>(), last = history[23].at("loss").get<double>();
  EXPECT_LT(last, 0.8 * first) << "first " << first << " last " << last;
  EXPECT_LT(history[23].at("valid_loss").get<double>(), history[11].at("valid_loss").get<double>());

  // Rerunning the finished command resumes from its checkpoint and writes the same weights.
  const auto before = read_file(dir + "/model/model.safetensors");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(read_file(dir + "/model/model.safetensors"), before);
}

}  // namespace
}  // namespace ctm::train
