// The generic trainer on a small language model built here from torch layers (embedding, dropout, linear
// head): loss goes down, accumulation does not change the update, a stopped and resumed run equals the
// uninterrupted one bit for bit, settings changed under a checkpoint are refused, keep_best restores the best
// validation point.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/train/batching.hpp"
#include "ctm/train/trainer.hpp"

namespace ctm::train {
namespace {

constexpr int64_t kVocab = 13;

struct BigramLmImpl : torch::nn::Module {
  explicit BigramLmImpl(uint64_t seed) {
    torch::manual_seed(seed);
    emb = register_module("emb", torch::nn::Embedding(kVocab, 16));
    drop = register_module("drop", torch::nn::Dropout(0.2));
    head = register_module("head", torch::nn::Linear(16, kVocab));
  }
  torch::Tensor forward(const torch::Tensor& ids_BT) { return head(drop(torch::tanh(emb(ids_BT)))); }
  std::vector<TrainableParam> trainable() {
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (const auto& kv : named_parameters()) named.emplace_back(kv.key(), kv.value());
    return default_decay_groups(named);
  }
  torch::nn::Embedding emb{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(BigramLm);

// Sequences that follow t -> (3t + 1) mod V with an occasional random token: a bigram model learns most of
// it.
std::vector<LmExample> make_examples(int n, uint64_t seed) {
  std::vector<LmExample> out;
  for (int i = 0; i < n; ++i) {
    Rng rng(mix_seed(seed, i, 0));
    LmExample ex;
    const int len = 4 + static_cast<int>(rng.below(9));
    int32_t t = static_cast<int32_t>(rng.below(kVocab));
    for (int k = 0; k < len; ++k) {
      ex.tokens.push_back(t);
      ex.is_target.push_back(k >= 2 ? 1 : 0);  // the first two tokens are the "prompt"
      t = rng.uniform() < 0.1 ? static_cast<int32_t>(rng.below(kVocab)) : (3 * t + 1) % kVocab;
    }
    out.push_back(std::move(ex));
  }
  return out;
}

Split make_split(BigramLm& model, const std::vector<LmExample>& examples) {
  Split s;
  for (const auto& ex : examples) s.lengths.push_back(static_cast<int64_t>(ex.tokens.size()));
  s.loss = [&model, &examples](const std::vector<int64_t>& ids, bool training) {
    model->train(training);
    std::vector<const LmExample*> exs;
    for (auto i : ids) exs.push_back(&examples[i]);
    const auto batch = collate_lm(exs, 0);
    auto logits_BTV = model->forward(batch.ids_BT);
    LossTerms terms;
    terms.sum = summed_nll(logits_BTV.view({-1, kVocab}), batch.targets_BT.view({-1}));
    terms.count = static_cast<double>(batch.num_targets);
    terms.metrics["examples"] = static_cast<double>(ids.size());
    return terms;
  };
  return s;
}

TrainerOptions base_options() {
  TrainerOptions o;
  o.lr = 0.05;
  o.adamw.weight_decay = 0.01;
  o.schedule.kind = ScheduleKind::Cosine;
  o.schedule.warmup_steps = 3;
  o.max_grad_norm = 1.0;
  o.micro_batch_size = 4;
  o.grad_accum_steps = 2;
  o.epochs = 3;
  o.megabatch = 4;
  o.eval_every = 4;
  o.log_every = 0;
  o.seed = 11;
  return o;
}

std::string fresh_dir(const std::string& name) {
  const auto dir = testing::TempDir() + "/ctm_trainer_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

bool same_params(BigramLm& a, BigramLm& b) {
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    if (!torch::equal(pa[i], pb[i])) return false;
  return true;
}

TEST(Trainer, LossDecreasesAndValidationImproves) {
  const auto train = make_examples(64, 1), valid = make_examples(16, 2);
  BigramLm model(5);
  auto train_split = make_split(model, train), valid_split = make_split(model, valid);
  Trainer trainer(model->trainable(), base_options());
  const double before = trainer.validate(valid_split);
  const auto result = trainer.fit(train_split, valid_split);
  EXPECT_FALSE(result.stopped);
  EXPECT_EQ(result.total_steps, 3 * 8);  // 16 micro-batches per epoch, 2 per update
  EXPECT_EQ(result.steps_done, 24);
  ASSERT_EQ(result.history.size(), 24u);
  EXPECT_DOUBLE_EQ(result.history[0].lr, 0.0);
  EXPECT_DOUBLE_EQ(result.history[3].lr, 0.05);
  double first = 0, last = 0;
  for (int i = 0; i < 4; ++i) first += result.history[i].loss / 4;
  for (int i = 20; i < 24; ++i) last += result.history[i].loss / 4;
  EXPECT_LT(last, 0.7 * first) << "first " << first << " last " << last;
  ASSERT_TRUE(result.last_valid_loss.has_value());
  EXPECT_LT(*result.last_valid_loss, 0.7 * before);
  // metrics are averaged over the loss units: examples per target token here
  EXPECT_GT(result.history[5].metrics.at("examples"), 0.0);
  EXPECT_LT(result.history[5].metrics.at("examples"), 1.0);
}

TEST(Trainer, AccumulationEqualsOneLargeBatch) {
  const auto train = make_examples(48, 3);
  auto run = [&](int64_t micro, int64_t accum) {
    BigramLm model(9);
    auto split = make_split(model, train);
    auto o = base_options();
    o.micro_batch_size = micro;
    o.grad_accum_steps = accum;
    o.megabatch = 1;  // plain shuffle: 2 micro-batches of 4 hold what one batch of 8 holds
    o.adamw.weight_decay = 0.0;
    Trainer trainer(model->trainable(), o);
    // no dropout: the two runs draw their masks per micro-batch, differently
    model->drop->options.p(0.0);
    trainer.fit(split, Split{});
    return model;
  };
  auto a = run(4, 2), b = run(8, 1);
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    const double err = (pa[i] - pb[i]).abs().max().item<double>();
    EXPECT_LE(err, 2e-6) << "param " << i << " max abs diff " << err;
  }
}

TEST(Trainer, ResumeEqualsUninterruptedRun) {
  const auto train = make_examples(64, 4), valid = make_examples(12, 5);
  // Uninterrupted.
  BigramLm straight(21);
  auto s_train = make_split(straight, train), s_valid = make_split(straight, valid);
  auto o = base_options();
  o.checkpoint_dir = fresh_dir("straight");
  const auto full = Trainer(straight->trainable(), o).fit(s_train, s_valid);
  ASSERT_EQ(full.steps_done, 24);

  // Stopped after 10 updates (mid-epoch, mid-way between validations) ...
  o.checkpoint_dir = fresh_dir("resumed");
  {
    BigramLm first(21);
    auto f_train = make_split(first, train), f_valid = make_split(first, valid);
    auto o_stop = o;
    int polls = 0;
    o_stop.should_stop = [&polls] { return ++polls == 10; };
    const auto part = Trainer(first->trainable(), o_stop).fit(f_train, f_valid);
    EXPECT_TRUE(part.stopped);
    EXPECT_EQ(part.steps_done, 10);
    EXPECT_TRUE(std::filesystem::exists(Trainer::checkpoint_file(o.checkpoint_dir)));
  }
  // ... and resumed by a new model (other initial weights) and a new trainer, as a new process would.
  BigramLm second(999);
  auto r_train = make_split(second, train), r_valid = make_split(second, valid);
  const auto rest = Trainer(second->trainable(), o).fit(r_train, r_valid);
  EXPECT_TRUE(rest.resumed);
  EXPECT_FALSE(rest.stopped);
  EXPECT_EQ(rest.steps_done, 24);
  EXPECT_TRUE(same_params(straight, second)) << "resumed parameters differ from the uninterrupted run";
  ASSERT_EQ(rest.history.size(), full.history.size());
  for (size_t i = 0; i < full.history.size(); ++i) {
    EXPECT_EQ(rest.history[i].loss, full.history[i].loss) << "update " << i;
    EXPECT_EQ(rest.history[i].valid_loss, full.history[i].valid_loss) << "update " << i;
  }
  for (const auto& entry : std::filesystem::directory_iterator(o.checkpoint_dir))
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << "left-over " << entry.path();

  // A finished run returns at once with the same parameters.
  BigramLm third(5);
  auto t_train = make_split(third, train), t_valid = make_split(third, valid);
  const auto again = Trainer(third->trainable(), o).fit(t_train, t_valid);
  EXPECT_EQ(again.steps_done, 24);
  EXPECT_TRUE(same_params(straight, third));
}

TEST(Trainer, RefusesACheckpointOfOtherSettings) {
  const auto train = make_examples(32, 6);
  auto o = base_options();
  o.checkpoint_dir = fresh_dir("mismatch");
  o.max_steps = 2;
  BigramLm model(1);
  auto split = make_split(model, train);
  Trainer(model->trainable(), o).fit(split, Split{});
  o.lr = 0.01;
  try {
    Trainer(model->trainable(), o).fit(split, Split{});
    FAIL() << "expected ctm::Error";
  } catch (const ctm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint.pt"), std::string::npos) << e.what();
  }
}

TEST(Trainer, KeepBestRestoresTheLowestValidationPoint) {
  const auto train = make_examples(32, 7), valid = make_examples(8, 8);
  BigramLm model(3);
  auto t = make_split(model, train), v = make_split(model, valid);
  auto o = base_options();
  o.lr = 3.0;  // far too large: the validation loss gets worse after the first evaluations
  o.max_grad_norm = 0.0;
  o.schedule.warmup_steps = 0;
  o.schedule.kind = ScheduleKind::Constant;
  o.eval_every = 1;
  o.keep_best = true;
  Trainer trainer(model->trainable(), o);
  const auto result = trainer.fit(t, v);
  ASSERT_TRUE(result.best_valid_loss && result.last_valid_loss);
  EXPECT_LT(*result.best_valid_loss, *result.last_valid_loss);
  EXPECT_NEAR(trainer.validate(v), *result.best_valid_loss, 1e-6);
}

}  // namespace
}  // namespace ctm::train
