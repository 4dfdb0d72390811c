// FSDP-style sharding on several ranks (ctest: 2; by hand: mpirun -np 3): LoRA gradients equal to the
// unsharded model's on the whole batch, dropout redrawn exactly in the recompute, each rank's resident
// base-weight bytes, and the trainer's loss curve with R ranks x micro-batch b against one rank x R b.
#include <gtest/gtest.h>
#include <malloc.h>

#include <filesystem>

#include "../dist/sharded_test_util.hpp"
#include "../model/model_test_util.hpp"
#include "ctm/core/error.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/dist/collective.hpp"
#include "ctm/text/tokenizer.hpp"
#include "ctm/train/lm_data.hpp"
#include "ctm/train/preference.hpp"
#include "mpi_test.hpp"

namespace ctm::dist {
namespace {

using test::world;

TEST(ShardedModel, FsdpIsOnByDefaultWithSeveralRanks) {
  EXPECT_EQ(fsdp_enabled("", world()), world().size() > 1);
  EXPECT_FALSE(fsdp_enabled("off", world()));
}

TEST(ShardedModel, LoraGradientsMatchUnshardedLlamaFixture) {
  test::expect_sharded_matches(test::sharded_vs_unsharded(test::llama_fixture(), world()));
}

TEST(ShardedModel, LoraGradientsMatchUnshardedTiny) {
  test::expect_sharded_matches(test::sharded_vs_unsharded(test::tiny_model(), world()));
}

TEST(ShardedModel, LoraGradientsMatchUnshardedTiedQwen2WithBiases) {
  auto& c = world();
  auto dir = c.broadcast(testing::TempDir() + "/ctm_sharded_qwen2_" + std::to_string(::getpid()));
  test::write_tied_qwen2(dir, c);
  test::expect_sharded_matches(test::sharded_vs_unsharded(dir, c));
  c.barrier();
  if (c.rank() == 0) std::filesystem::remove_all(dir);
}

TEST(ShardedModel, DropoutMasksAreRedrawnInTheRecompute) {
  EXPECT_LT(test::dropout_recompute_check(test::llama_fixture(), world()).max_rel, 2e-5);
}

// Bytes of the base weights as rank r of R holds them (shards padded to ceil(rows / R) rows, the final norm
// and the untied LM head whole) and of the largest block gathered, from the unsharded model's shapes.
struct ExpectedBytes {
  int64_t model = 0, resident = 0, replicated = 0, largest_block = 0, padding_bound = 0;
};
ExpectedBytes expected_bytes(const model::Transformer& m, int R) {
  ExpectedBytes e;
  std::map<std::string, int64_t> blocks;
  for (const auto& [name, t] : m.named_parameters()) {
    const int64_t bytes = static_cast<int64_t>(t.nbytes()), row = bytes / t.size(0);
    const int64_t shard = (t.size(0) + R - 1) / R * row;
    e.model += bytes;
    if (name == "model.norm.weight" || name == "lm_head.weight") {
      e.resident += bytes;
      e.replicated += bytes;
      continue;
    }
    e.resident += shard;
    e.padding_bound += row;
    const auto dot = name.find('.', name.find("layers.") == std::string::npos ? 0 : name.find("layers.") + 7);
    blocks[name.substr(0, dot)] += shard * R;
  }
  for (const auto& b : blocks) e.largest_block = std::max(e.largest_block, b.second);
  return e;
}

TEST(ShardedModel, ResidentBaseWeightsAreAShareOfTheModel) {
  auto& c = world();
  const int R = c.size();
  const auto ref = model::load_model(test::tiny_model(), torch::kCPU, torch::kFloat32);
  const auto e = expected_bytes(*ref, R);
  malloc_trim(0);
  const bool rss_reset = model::test::reset_peak_rss();
  const int64_t rss0 = model::test::proc_status_bytes("VmRSS");
  ShardedModel sharded(test::tiny_model(), torch::kCPU, torch::kFloat32, device_comm(c, torch::kCPU));
  const int64_t load_peak = model::test::proc_status_bytes("VmHWM") - rss0;
  const int64_t load_kept = model::test::proc_status_bytes("VmRSS") - rss0;
  auto& m = *sharded.model();
  test::add_test_lora(m);
  const auto examples = test::random_examples(4, m.config().vocab_size, 9);
  std::vector<int64_t> mine = {c.rank() % 4};
  test::loss_backward(m, examples, mine);
  const auto s = sharded.stats();
  EXPECT_EQ(s.model_bytes, e.model);
  EXPECT_EQ(s.resident_bytes, e.resident);
  EXPECT_LE(s.resident_bytes, (e.model - e.replicated) / R + e.padding_bound + e.replicated);
  EXPECT_EQ(s.largest_block_bytes, e.largest_block);
  EXPECT_EQ(s.peak_gathered_bytes, e.largest_block);  // one block at a time, forward and backward
  EXPECT_LT(load_kept, e.resident + (1 << 20));       // the process holds its shards, not the model
  if (rss_reset) {
    EXPECT_LT(load_peak, e.resident + e.largest_block + (1 << 20));
  }
  const auto lines = c.gather(str("rank ", c.rank(), ": resident ", s.resident_bytes, " B (",
                                  s.resident_bytes * 1.0 / s.model_bytes, " of the model), peak gathered ",
                                  s.peak_gathered_bytes, " B, resident + gathered ",
                                  s.resident_bytes + s.peak_gathered_bytes, " B; RSS added by the load ",
                                  load_kept, " B (peak ", rss_reset ? load_peak : -1, " B)"));
  if (c.rank() == 0) {
    std::printf("[memory] tiny (%lld B of base weights, float32) on %d ranks; largest block %lld B:\n",
                static_cast<long long>(s.model_bytes), R, static_cast<long long>(s.largest_block_bytes));
    for (const auto& l : lines) std::printf("[memory]   %s\n", l.c_str());
  }
}

// A small LoRA SFT on ARITH problems with the tiny model. megabatch 1 (a plain shuffle) makes the R
// micro-batches of b of one update hold what one micro-batch of R b holds, so the updates are the same.
std::vector<train::LmExample> arith_examples(int64_t n) {
  const auto tok = text::Tokenizer::load(test::tiny_model());
  const auto kind = data::parse_dataset("ARITH");
  std::vector<train::LmExample> out;
  for (const auto& p : data::load_problems(std::string(CTM_SOURCE_DIR) + "/data/arith/train.jsonl", n))
    out.push_back(train::tokenize_pieces(tok, train::qa_pieces(kind, p, true)));
  return out;
}

train::TrainResult train_lora(std::shared_ptr<model::Transformer> m,
                              const std::vector<train::LmExample>& examples, int64_t micro, int64_t accum,
                              double dropout, train::Collective* collective,
                              const std::vector<train::LmExample>& valid = {}) {
  model::LoraConfig cfg;
  cfg.r = 8;
  cfg.alpha = 16;
  cfg.dropout = dropout;
  cfg.target_modules = {"q_proj", "v_proj", "gate_proj", "down_proj"};
  model::add_lora(*m, cfg, 1);
  train::TrainerOptions o;
  o.lr = 3e-3;
  o.schedule.warmup_steps = 2;
  o.micro_batch_size = micro;
  o.grad_accum_steps = accum;
  o.epochs = 2;
  o.megabatch = 1;
  o.log_every = 0;
  o.seed = 5;
  o.label = "sharded-test";
  train::Trainer trainer(train::lora_parameters(*m), o, collective);
  const train::Split split{train::example_lengths(examples), train::lm_loss_fn(*m, examples, 0)};
  const train::Split valid_split{train::example_lengths(valid), train::lm_loss_fn(*m, valid, 0)};
  return trainer.fit(split, valid_split);
}

double compare_curves(const char* what, const train::TrainResult& a, const train::TrainResult& b) {
  EXPECT_EQ(a.history.size(), b.history.size());
  double worst = 0.0;
  std::string curve;
  for (size_t i = 0; i < std::min(a.history.size(), b.history.size()); ++i) {
    const double x = a.history[i].loss, y = b.history[i].loss;
    worst = std::max(worst, std::abs(x - y) / std::abs(y));
    curve += str(i ? ", " : "", x, " / ", y);
  }
  if (world().rank() == 0)
    std::printf("[train] %s: loss %s; max rel diff %.3g\n", what, curve.c_str(), worst);
  // It learns: the second epoch's loss over the same examples is below the first's.
  double epoch_loss[2] = {0, 0};
  for (const auto& r : a.history) epoch_loss[std::min<int64_t>(r.epoch, 1)] += r.loss * r.units;
  EXPECT_LT(epoch_loss[1], epoch_loss[0]);
  return worst;
}

TEST(ShardedModel, TrainerLossCurveEqualsOneRankWithTheWholeBatch) {
  auto& c = world();
  const int R = c.size();
  const int64_t b = 2;
  const auto examples = arith_examples(2 * R * b);  // 2 updates per epoch, every rank a micro-batch in each
  CommCollective collective(c);
  auto load_sharded = [&] {
    return std::make_shared<ShardedModel>(test::tiny_model(), torch::kCPU, torch::kFloat32,
                                          device_comm(c, torch::kCPU));
  };
  auto load_whole = [] { return model::load_model(test::tiny_model(), torch::kCPU, torch::kFloat32); };
  {
    auto sharded = load_sharded();
    const auto dp = train_lora(sharded->model(), examples, b, 1, 0.0, &collective);
    const auto one = train_lora(load_whole(), examples, R * b, 1, 0.0, nullptr);
    EXPECT_LT(compare_curves(str(R, " ranks x ", b, " (sharded) vs 1 rank x ", R * b).c_str(), dp, one),
              1e-4);
  }
  {
    // With dropout: R ranks x b against one rank accumulating R micro-batches of b (the same micro-batches
    // and the same per-micro-batch seeds).
    auto sharded = load_sharded();
    const auto dp = train_lora(sharded->model(), examples, b, 1, 0.1, &collective);
    const auto one = train_lora(load_whole(), examples, b, R, 0.1, nullptr);
    EXPECT_LT(compare_curves(
                  str(R, " ranks x ", b, " (sharded, dropout 0.1) vs 1 rank x ", b, " x ", R, " accumulated")
                      .c_str(),
                  dp, one),
              1e-4);
  }
}

// Rounds where some ranks have no micro-batch: 2 R b + b examples make the last update of each epoch one
// micro-batch, and a validation split of one batch leaves all ranks but rank 0 without one. Those ranks run
// zero-weighted passes (the sharded model's all-gathers need every rank), and the updates and the validation
// loss are those of one rank accumulating the same micro-batches.
TEST(ShardedModel, RanksWithoutAMicroBatchKeepInStep) {
  auto& c = world();
  const int R = c.size();
  const int64_t b = 2;
  auto examples = arith_examples(2 * R * b + b + 1);
  const std::vector<train::LmExample> valid = {examples.back()};
  examples.pop_back();
  CommCollective collective(c);
  auto sharded = std::make_shared<ShardedModel>(test::tiny_model(), torch::kCPU, torch::kFloat32,
                                                device_comm(c, torch::kCPU));
  const auto dp = train_lora(sharded->model(), examples, b, 1, 0.0, &collective, valid);
  const auto one = train_lora(model::load_model(test::tiny_model(), torch::kCPU, torch::kFloat32), examples,
                              b, R, 0.0, nullptr, valid);
  EXPECT_EQ(dp.history.size(), 6u);  // 2 epochs of 3 updates, the third with one micro-batch
  EXPECT_LT(
      compare_curves(str(R, " ranks x ", b, " (sharded, uneven rounds) vs 1 rank x ", b, " x ", R).c_str(),
                     dp, one),
      1e-4);
  ASSERT_TRUE(dp.last_valid_loss && one.last_valid_loss);
  EXPECT_NEAR(*dp.last_valid_loss, *one.last_valid_loss, 1e-5 * *one.last_valid_loss);
}

// cDPO's reference pass split over the ranks: rows of 50, 45, 40, 35, 30 and 25 random tokens in batches of
// 100 padded tokens make 3 batches of 2 rows, so with 2 ranks rank 1 runs a padding forward in the second
// round. The sharded model on R ranks gives the unsharded model's values on one rank, bit for bit.
TEST(ShardedModel, ReferenceLogpsSplitOverRanksEqualOneRank) {
  auto& c = world();
  std::vector<train::PreferencePair> pairs(3);
  Rng rng(17);
  auto tokens = [&](int64_t n) {
    std::vector<int32_t> t = {745};  // BOS
    while (static_cast<int64_t>(t.size()) < n) t.push_back(static_cast<int32_t>(rng.below(745)));
    return t;
  };
  for (int64_t i = 0; i < 3; ++i) {
    pairs[i].chosen = tokens(50 - 10 * i);
    pairs[i].rejected = tokens(45 - 10 * i);
  }
  CommCollective collective(c);
  ShardedModel sharded(test::tiny_model(), torch::kCPU, torch::kFloat32, device_comm(c, torch::kCPU));
  const auto got = train::reference_logps(*sharded.model(), pairs, &collective, 100);
  const auto whole = model::load_model(test::tiny_model(), torch::kCPU, torch::kFloat32);
  const auto want = train::reference_logps(*whole, pairs, nullptr, 100);
  const int64_t rounds = (3 + c.size() - 1) / c.size();
  EXPECT_EQ(sharded.stats().gathers, 5 * rounds);  // embedding + 4 layers per round, on every rank
  for (size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(got.chosen[i], want.chosen[i]) << "pair " << i;
    EXPECT_EQ(got.rejected[i], want.rejected[i]) << "pair " << i;
    EXPECT_EQ(got.chosen[i].size(), pairs[i].chosen.size());
  }
}

}  // namespace
}  // namespace ctm::dist
