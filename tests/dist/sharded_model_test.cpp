// The sharded model on one rank (the local backend): row shards, the recompute path against the plain model,
// dropout masks redrawn exactly in the backward, tied heads and biases. tests/mpi runs the same checks on
// several ranks.
#include <gtest/gtest.h>

#include <filesystem>

#include "ctm/core/error.hpp"
#include "ctm/dist/sharded_model.hpp"
#include "sharded_test_util.hpp"

namespace ctm::dist {
namespace {

TEST(RowShard, RowsPaddedToEqualShards) {
  // 10 rows on 3 ranks: shards of 4 rows, the last holding 2 real rows and 2 of padding.
  const RowShard a = row_shard(10, 0, 3), b = row_shard(10, 1, 3), c = row_shard(10, 2, 3);
  EXPECT_EQ(a.shard_rows, 4);
  EXPECT_EQ(c.shard_rows, 4);
  EXPECT_EQ(a.begin, 0);
  EXPECT_EQ(b.begin, 4);
  EXPECT_EQ(c.begin, 8);
  EXPECT_EQ(a.count, 4);
  EXPECT_EQ(c.count, 2);
  // 3 rows on 4 ranks: the last rank holds only padding.
  EXPECT_EQ(row_shard(3, 3, 4).count, 0);
  EXPECT_EQ(row_shard(3, 3, 4).shard_rows, 1);
  EXPECT_EQ(row_shard(3, 2, 4).begin, 2);
  EXPECT_EQ(row_shard(8, 0, 1).count, 8);
}

TEST(ShardedModel, FsdpOption) {
  auto one = make_local_comm();
  EXPECT_FALSE(fsdp_enabled("", *one));
  EXPECT_FALSE(fsdp_enabled("auto", *one));
  EXPECT_TRUE(fsdp_enabled("on", *one));
  EXPECT_FALSE(fsdp_enabled("off", *one));
  EXPECT_THROW(fsdp_enabled("yes", *one), UsageError);
}

TEST(ShardedModel, BaseWeightsArePlaceholdersBetweenBlocks) {
  ShardedModel sharded(test::llama_fixture(), torch::kCPU, torch::kFloat32, make_local_comm());
  auto& m = *sharded.model();
  EXPECT_TRUE(m.layers()[0].q_proj.weight.is_meta());
  EXPECT_TRUE(m.embed_tokens().is_meta());
  EXPECT_FALSE(m.final_norm().is_meta());  // replicated
  EXPECT_FALSE(m.lm_head().is_meta());     // replicated: callers run it per chunk of positions
  // A no-grad forward (no recompute) gives the plain model's logits and leaves placeholders behind.
  auto ref = model::load_model(test::llama_fixture(), torch::kCPU, torch::kFloat32);
  const auto ids = torch::tensor({{3, 17, 250, 9, 64}}, torch::kInt64);
  const auto pos = torch::arange(5, torch::kInt64).unsqueeze(0);
  torch::NoGradGuard no_grad;
  model::CausalAttention a1, a2;
  const auto diff = (m.forward(ids, pos, a1) - ref->forward(ids, pos, a2)).abs().max().item<double>();
  EXPECT_EQ(diff, 0.0);
  EXPECT_TRUE(m.layers()[2].down_proj.weight.is_meta());
  EXPECT_EQ(sharded.stats().gathers, 4);  // embedding, 3 layers
}

TEST(ShardedModel, OneRankLoraGradientsMatchUnsharded) {
  auto comm = make_local_comm();
  test::expect_sharded_matches(test::sharded_vs_unsharded(test::llama_fixture(), *comm));
}

TEST(ShardedModel, TiedHeadAndBiases) {
  auto comm = make_local_comm();
  const auto dir = testing::TempDir() + "/ctm_sharded_qwen2_" + std::to_string(::getpid());
  test::write_tied_qwen2(dir, *comm);
  test::expect_sharded_matches(test::sharded_vs_unsharded(dir, *comm));
  std::filesystem::remove_all(dir);
}

TEST(ShardedModel, DropoutMasksAreRedrawnInTheRecompute) {
  auto comm = make_local_comm();
  const auto d = test::dropout_recompute_check(test::llama_fixture(), *comm);
  EXPECT_LT(d.max_rel, 2e-5);
}

}  // namespace
}  // namespace ctm::dist
