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

// Runs one layer: prefill of two prompts, then `steps` decode steps of three slots (two share prompt A).
// Returns the largest difference to the dense reference over every decode step.
double run_against_dense(bool force_reference, int64_t block_size, int64_t gemm_min_group = 8) {
  torch::manual_seed(3);
  const auto cfg = small_config();
  const int64_t H = cfg.num_heads, K = cfg.num_kv_heads, D = cfg.head_dim;
  SharedPrefixCache cache(cfg, 64, block_size, torch::kCPU, torch::kFloat32);
  cache.set_force_reference(force_reference);
  cache.set_prefix_gemm_min_group(gemm_min_group);
  const int64_t PA = 11, PB = 5;
  BlockList prefix_a, prefix_b;
  EXPECT_TRUE(cache.allocate(cache.blocks_for(PA), prefix_a));
  EXPECT_TRUE(cache.allocate(cache.blocks_for(PB), prefix_b));
  std::vector<torch::Tensor> dense_k, dense_v;  // per slot [K, T, D]
  auto prefill = [&](const BlockList& blocks, int64_t P) {
    const auto q = torch::randn({1, H, P, D}), k = torch::randn({1, K, P, D}), v = torch::randn({1, K, P, D});
    cache.begin_prefill(blocks);
    for (int64_t layer = 0; layer < cfg.num_layers; ++layer) cache.attend(layer, q, k, v);
    return std::make_pair(k[0], v[0]);
  };
  const auto [ka, va] = prefill(prefix_a, PA);
  const auto [kb, vb] = prefill(prefix_b, PB);
  const std::vector<const BlockList*> prefix_of = {&prefix_a, &prefix_b, &prefix_a};
  const std::vector<int64_t> plen = {PA, PB, PA};
  dense_k = {ka, kb, ka};
  dense_v = {va, vb, va};
  const int64_t steps = 9;
  std::vector<BlockList> suffix(3);
  for (auto& s : suffix) EXPECT_TRUE(cache.allocate(cache.blocks_for(steps), s));
  double worst = 0;
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<SharedPrefixCache::Slot> slots;
    for (int64_t s = 0; s < 3; ++s) slots.push_back({prefix_of[s], plen[s], &suffix[s], step});
    cache.begin_decode(slots);
    const auto q = torch::randn({3, H, 1, D}), k = torch::randn({3, K, 1, D}), v = torch::randn({3, K, 1, D});
    torch::Tensor out;
    for (int64_t layer = 0; layer < cfg.num_layers; ++layer) out = cache.attend(layer, q, k, v);
    for (int64_t s = 0; s < 3; ++s) {
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

TEST(SharedPrefixCache, PrefixAsMatrixProductsMatchesDenseAttention) {
  for (int64_t min_group : {1, 2}) {  // every group, or only the two slots sharing prompt A
    const double err = run_against_dense(false, 4, min_group);
    EXPECT_LT(err, 1e-5) << "groups of >= " << min_group << ": max abs error " << err;
  }
}

TEST(SharedPrefixCache, TorchPathMatchesDenseAttention) {
  const double err = run_against_dense(true, 4);
  EXPECT_LT(err, 1e-5) << "max abs error " << err;
}

TEST(SharedPrefixCache, PortableKernelEqualsDispatchedKernel) {
  // Same inputs through both builds: a two-slot group sharing a 7-token prefix with 3-token suffixes.
  torch::manual_seed(5);
  const int64_t H = 4, K = 2, D = 16, BS = 4, NB = 6;
  const auto kpool = torch::randn({NB, K, BS, D}), vpool = torch::randn({NB, K, BS, D});
  const auto q = torch::randn({2, H, D});
  const std::vector<int32_t> prefix = {4, 1}, suf0 = {0}, suf1 = {5};
  const std::vector<ctm::engine::detail::DecodeSlot> slots = {{prefix.data(), 7, suf0.data(), 3},
                                                              {prefix.data(), 7, suf1.data(), 3}};
  const std::vector<int64_t> members = {0, 1}, offsets = {0, 2};
  std::vector<float> scratch(2 * H * 10);
  auto run = [&](bool portable) {
    auto out = torch::zeros({2, H, D});
    ctm::engine::detail::DecodeAttentionArgs args{q.data_ptr<float>(),
                                                  out.data_ptr<float>(),
                                                  kpool.data_ptr<float>(),
                                                  vpool.data_ptr<float>(),
                                                  H,
                                                  K,
                                                  D,
                                                  BS,
                                                  slots.data(),
                                                  members.data(),
                                                  offsets.data(),
                                                  1,
                                                  0.25f,
                                                  scratch.data(),
                                                  nullptr};
    portable ? ctm::engine::detail::decode_attention_portable(args)
             : ctm::engine::detail::decode_attention(args);
    return out;
  };
  const double err = (run(true) - run(false)).abs().max().item<double>();
  EXPECT_LT(err, 1e-5) << "max abs difference " << err;
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
