// The shared-prefix cache against a dense computation: softmax(q k^T / sqrt(d)) v over [prefix keys, suffix
// keys] kept by the test in ordinary tensors. Both the CPU kernel (AVX2 and portable builds) and the torch-op
// path.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "../../src/engine/decode_attention.hpp"
#include "ctm/core/error.hpp"
#include "ctm/engine/block_pool.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "engine_test_util.hpp"

using namespace ctm;
using namespace ctm::engine;

namespace {

model::ModelConfig small_config() {
  model::ModelConfig c;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 128;
  c.vocab_size = 100;
  return c;
}

// Runs one layer: prefill of two prompts, then `steps` decode steps of three slots (two share prompt A), or
// with `shared` false two slots (one per prompt). Returns the largest difference to the dense reference over
// every decode step. In bfloat16 the inputs are rounded to it first, so the reference sees the same numbers.
double run_against_dense(bool force_reference, int64_t block_size, torch::Dtype dtype = torch::kFloat32,
                         bool shared = true) {
  torch::manual_seed(3);
  const auto cfg = small_config();
  const int64_t H = cfg.num_heads, K = cfg.num_kv_heads, D = cfg.head_dim;
  SharedPrefixCache cache(cfg, 64, block_size, torch::kCPU, dtype);
  const auto randn = [&](std::vector<int64_t> shape) {
    return torch::randn(shape).to(dtype).to(torch::kFloat32);
  };
  cache.set_force_reference(force_reference);
  const int64_t PA = 11, PB = 5;
  BlockList prefix_a, prefix_b;
  EXPECT_TRUE(cache.allocate(cache.blocks_for(PA), prefix_a));
  EXPECT_TRUE(cache.allocate(cache.blocks_for(PB), prefix_b));
  std::vector<torch::Tensor> dense_k, dense_v;  // per slot [K, T, D]
  auto prefill = [&](const BlockList& blocks, int64_t P) {
    const auto q = randn({1, H, P, D}), k = randn({1, K, P, D}), v = randn({1, K, P, D});
    cache.begin_prefill(blocks);
    for (int64_t layer = 0; layer < cfg.num_layers; ++layer)
      cache.attend(layer, q.to(dtype), k.to(dtype), v.to(dtype));
    return std::make_pair(k[0], v[0]);
  };
  const auto [ka, va] = prefill(prefix_a, PA);
  const auto [kb, vb] = prefill(prefix_b, PB);
  const std::vector<const BlockList*> prefix_of = {&prefix_a, &prefix_b, &prefix_a};
  const std::vector<int64_t> plen = {PA, PB, PA};
  dense_k = {ka, kb, ka};
  dense_v = {va, vb, va};
  const int64_t steps = 9;
  const int64_t S = shared ? 3 : 2;
  std::vector<BlockList> suffix(S);
  for (auto& s : suffix) EXPECT_TRUE(cache.allocate(cache.blocks_for(steps), s));
  double worst = 0;
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<SharedPrefixCache::Slot> slots;
    for (int64_t s = 0; s < S; ++s) slots.push_back({prefix_of[s], plen[s], &suffix[s], step});
    cache.begin_decode(slots);
    const auto q = randn({S, H, 1, D}), k = randn({S, K, 1, D}), v = randn({S, K, 1, D});
    torch::Tensor out;
    for (int64_t layer = 0; layer < cfg.num_layers; ++layer)
      out = cache.attend(layer, q.to(dtype), k.to(dtype), v.to(dtype)).to(torch::kFloat32);
    for (int64_t s = 0; s < S; ++s) {
      dense_k[s] = torch::cat({dense_k[s], k[s]}, 1);
      dense_v[s] = torch::cat({dense_v[s], v[s]}, 1);
      const auto want = test::dense_attention(q[s].select(1, 0), dense_k[s], dense_v[s]);
      worst = std::max(worst, (out[s].select(1, 0).to(torch::kFloat64) - want).abs().max().item<double>());
    }
  }
  return worst;
}

}  // namespace

TEST(SharedPrefixCache, KernelMatchesDenseAttention) {
  for (int64_t bs : {1, 4, 16}) {
    const double err = run_against_dense(false, bs);
    EXPECT_LT(err, 1e-5) << "block size " << bs << ": max abs error " << err;
  }
}

// The batched torch-op path (CUDA's): one group of two slots and one of one, prefixes ending inside a block.
TEST(SharedPrefixCache, TorchPathMatchesDenseAttention) {
  for (int64_t bs : {1, 4, 16}) {
    const double err = run_against_dense(true, bs);
    EXPECT_LT(err, 1e-5) << "block size " << bs << ": max abs error " << err;
  }
}

// Every group of one slot (distinct prompts): each slot reads its prefix and suffix through one table.
TEST(SharedPrefixCache, TorchPathWithoutSharedPrefixesMatchesDenseAttention) {
  for (int64_t bs : {1, 4, 16}) {
    const double err = run_against_dense(true, bs, torch::kFloat32, /*shared=*/false);
    EXPECT_LT(err, 1e-5) << "block size " << bs << ": max abs error " << err;
  }
  EXPECT_LT(run_against_dense(true, 4, torch::kBFloat16, /*shared=*/false), 3e-2);
}

// In bfloat16 (the GPU's KV dtype): the products round to bfloat16, the softmax stays float32.
TEST(SharedPrefixCache, TorchPathMatchesDenseAttentionInBf16) {
  for (int64_t bs : {4, 16}) {
    const double err = run_against_dense(true, bs, torch::kBFloat16);
    EXPECT_LT(err, 3e-2) << "block size " << bs << ": max abs error " << err;
    EXPECT_GT(err, 0.0) << "bfloat16 products should round";
  }
}

namespace {

// The kernel on hand-made pools: slots sharing a 37-token prefix (3 blocks of 16), each with its own keys.
struct KernelCase {
  int64_t H = 4, K = 2, D = 24, BS = 16, NB = 12;  // D not a multiple of the vector width: masked lanes
  torch::Tensor kpool = torch::randn({NB, K, D, BS}), vpool = torch::randn({NB, K, BS, D});
  torch::Tensor q = torch::randn({8, H, D});
  std::vector<int32_t> prefix = {7, 2, 9}, own[8] = {{0}, {1}, {3}, {4}, {5, 6}, {8}, {10}, {11}};
  std::vector<int64_t> own_len = {1, 5, 16, 3, 17, 2, 9, 16};
  ctm::engine::detail::AttentionPool pool() {
    return {kpool.data_ptr<float>(), vpool.data_ptr<float>(), H, K, D, BS, 1.f / std::sqrt(float(D))};
  }
  // Slots `members` as one group; the outputs [8, H, D] (untouched rows stay NaN).
  torch::Tensor run(const std::vector<int64_t>& members, bool portable = false) {
    auto out = torch::full({8, H, D}, std::nanf(""));
    std::vector<ctm::engine::detail::AttentionSlot> slots(8);
    for (int64_t s = 0; s < 8; ++s)
      slots[s] = {
          q[s].data_ptr<float>(), out[s].data_ptr<float>(), prefix.data(), 37, own[s].data(), own_len[s]};
    const auto p = pool();
    for (int64_t kh = 0; kh < K; ++kh)
      portable
          ? ctm::engine::detail::attend_group_portable(p, slots.data(), members.data(), members.size(), kh)
          : ctm::engine::detail::attend_group(p, slots.data(), members.data(), members.size(), kh);
    return out;
  }
  // Dense float64 reference for slot s.
  torch::Tensor dense(int64_t s) {
    auto keys = [&](const torch::Tensor& pool, bool transposed, const std::vector<int32_t>& blocks,
                    int64_t len) {
      std::vector<torch::Tensor> parts;
      for (int32_t b : blocks) parts.push_back(transposed ? pool[b].transpose(1, 2) : pool[b]);
      return torch::cat(parts, 1).narrow(1, 0, len);  // [K, len, D]
    };
    const auto k = torch::cat({keys(kpool, true, prefix, 37), keys(kpool, true, own[s], own_len[s])}, 1);
    const auto v = torch::cat({keys(vpool, false, prefix, 37), keys(vpool, false, own[s], own_len[s])}, 1);
    return test::dense_attention(q[s], k, v);
  }
};

}  // namespace

TEST(AttentionKernel, MatchesDenseAndDoesNotDependOnTheGroup) {
  torch::manual_seed(5);
  KernelCase c;
  const auto all = c.run({0, 1, 2, 3, 4, 5, 6, 7});
  double err = 0;
  for (int64_t s = 0; s < 8; ++s)
    err = std::max(err, (all[s].to(torch::kFloat64) - c.dense(s)).abs().max().item<double>());
  EXPECT_LT(err, 1e-5) << "max abs error against dense float64 attention";
  // Alone, in other groups, in another order: the same bits.
  for (int64_t s = 0; s < 8; ++s)
    EXPECT_TRUE(torch::equal(c.run({s})[s], all[s])) << "slot " << s << " alone";
  const auto some = c.run({6, 2, 4});
  for (int64_t s : {2, 4, 6})
    EXPECT_TRUE(torch::equal(some[s], all[s])) << "slot " << s << " in a group of 3";
  // The portable build: the same maths, other rounding.
  const double perr = (c.run({0, 1, 2, 3, 4, 5, 6, 7}, true) - all).abs().max().item<double>();
  EXPECT_LT(perr, 1e-5) << "max abs difference of the portable build " << perr;
}

TEST(AttentionKernel, PromptRowsEqualDecodeSteps) {
  // Rows of a prompt (one group, each reading its own prefix length) against the same positions read as a
  // prefix of 37 keys plus own keys: the bits agree, so a prompt's keys/values and logits do not depend on
  // how it was split between prefill and decode.
  torch::manual_seed(6);
  KernelCase c;
  const auto decoded = c.run({0, 1, 2, 3, 4, 5, 6, 7});
  // Copy slot 4's own 17 keys (blocks 5, 6) into blocks 0, 1 after the prefix in one list: prefix of 37 +
  // 17 keys = 54 positions, the own keys starting mid-block as a prompt's would.
  std::vector<int32_t> seq = {7, 2, 9, 0, 1};
  auto kp = c.kpool.clone(), vp = c.vpool.clone();
  for (int64_t t = 0; t < 17; ++t) {
    const int64_t src_b = c.own[4][t / 16], src_o = t % 16, pos = 37 + t, dst_b = seq[pos / 16],
                  dst_o = pos % 16;
    kp[dst_b].select(2, dst_o).copy_(c.kpool[src_b].select(2, src_o));
    vp[dst_b].select(1, dst_o).copy_(c.vpool[src_b].select(1, src_o));
  }
  // Rows 37 .. 53 of the prompt; row 53 reads the same keys as slot 4 with the same query.
  std::vector<ctm::engine::detail::AttentionSlot> rows(17);
  std::vector<int64_t> members(17);
  auto out = torch::full({17, c.H, c.D}, std::nanf(""));
  for (int64_t t = 0; t < 17; ++t) {
    rows[t] = {c.q[4].data_ptr<float>(), out[t].data_ptr<float>(), seq.data(), 37 + t + 1, nullptr, 0};
    members[t] = t;
  }
  const ctm::engine::detail::AttentionPool p{
      kp.data_ptr<float>(), vp.data_ptr<float>(), c.H, c.K, c.D, c.BS, 1.f / std::sqrt(float(c.D))};
  for (int64_t kh = 0; kh < c.K; ++kh)
    ctm::engine::detail::attend_group(p, rows.data(), members.data(), 17, kh);
  EXPECT_TRUE(torch::equal(out[16], decoded[4]));
  EXPECT_FALSE(out.isnan().any().item<bool>());
}

TEST(SharedPrefixCache, AllocationNeverExceedsThePool) {
  SharedPrefixCache cache(small_config(), 5, 4, torch::kCPU, torch::kFloat32);
  EXPECT_EQ(cache.pool_bytes(), 2 * 2 * 5 * 2 * 4 * 16 * 4);
  EXPECT_EQ(SharedPrefixCache::bytes_per_token(small_config(), torch::kFloat32), 2 * 2 * 2 * 16 * 4);
  BlockList a, b;
  EXPECT_TRUE(cache.allocate(3, a));
  EXPECT_FALSE(cache.allocate(3, b));
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(cache.free_blocks(), 2);
  cache.release(a);
  EXPECT_EQ(cache.free_blocks(), 5);
  EXPECT_TRUE(cache.allocate(5, b));
}

TEST(BlockPool, ReferenceCountsAndGrowth) {
  BlockPool pool(4);
  BlockList a, b, c;
  ASSERT_TRUE(pool.allocate(3, a));
  EXPECT_EQ(a, (BlockList{0, 1, 2}));  // lowest ids first
  pool.share(a, 2, b);                 // b shares blocks 0 and 1
  EXPECT_EQ(b, (BlockList{0, 1}));
  EXPECT_EQ(pool.refcount(0), 2);
  EXPECT_EQ(pool.refcount(2), 1);
  EXPECT_EQ(pool.used_blocks(), 3);  // a shared block is counted once
  EXPECT_FALSE(pool.allocate(2, c));
  EXPECT_TRUE(c.empty());
  pool.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(pool.used_blocks(), 2);  // block 2 is free again, 0 and 1 are still b's
  EXPECT_EQ(pool.refcount(0), 1);
  EXPECT_THROW(pool.share(BlockList{2}, 1, c), Error);  // a free block cannot be shared
  pool.grow(6);
  EXPECT_EQ(pool.num_blocks(), 6);
  EXPECT_EQ(pool.refcount(1), 1);
  ASSERT_TRUE(pool.allocate(4, c));
  EXPECT_EQ(c, (BlockList{2, 3, 4, 5}));
  pool.release(b);
  pool.release(c);
  EXPECT_EQ(pool.free_blocks(), 6);
  EXPECT_THROW(pool.release(b = {0}), Error);  // releasing a free block is a bug
}

TEST(SharedPrefixCache, ReserveKeepsContentsAndCopyTokensCopiesAPartialBlock) {
  const auto cfg = small_config();
  SharedPrefixCache cache(cfg, 2, 4, torch::kCPU, torch::kFloat32);
  BlockList blocks;
  ASSERT_TRUE(cache.allocate(2, blocks));
  torch::manual_seed(9);
  const auto q = torch::randn({1, 4, 7, 16}), k = torch::randn({1, 2, 7, 16}),
             v = torch::randn({1, 2, 7, 16});
  cache.begin_extend(blocks, 0);
  const auto before = cache.attend(0, q, k, v);
  cache.reserve(5);
  EXPECT_EQ(cache.num_blocks(), 5);
  EXPECT_EQ(cache.used_blocks(), 2);
  // Block 1 holds tokens 4..6; copy its first 3 into a fresh block and read through it.
  BlockList copy = {blocks[0]};
  ASSERT_TRUE(cache.allocate(1, copy));
  cache.copy_tokens(blocks[1], copy[1], 3);
  const auto q1 = q.narrow(2, 6, 1), k1 = k.narrow(2, 6, 1), v1 = v.narrow(2, 6, 1);
  cache.begin_extend(copy, 6);  // token 6 again, written into the copy
  const auto again = cache.attend(0, q1, k1, v1);
  EXPECT_TRUE(torch::equal(again[0].select(1, 0), before[0].select(1, 6)));
}
