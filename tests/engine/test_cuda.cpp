// The CUDA path (bfloat16 on the GPU, the project's convention) against float32/float64 references on the
// CPU. Every test is skipped where CUDA is not available (CI, the development machines); tools/gpu/check.sh
// runs them on a GPU machine.
//  - the KV cache's torch-op path (prefill + decode, shared prefixes) against dense attention in float64;
//  - the committed tiny model: KV-cache decode logits against full forwards, on CUDA and on the CPU;
//  - the engine on CUDA: every greedy token is an argmax of a full forward (up to bfloat16 rounding).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "ctm/engine/engine.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "ctm/model/attention.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/text/tokenizer.hpp"
#include "engine_test_util.hpp"

using namespace ctm;
using namespace ctm::engine;

namespace {

// The device under test: CUDA; or, with CTM_CUDA_TESTS_ON_CPU=1 and no GPU, the CPU in bfloat16 (to check the
// tests themselves on a machine without a GPU).
torch::Device test_device() {
  if (torch::cuda::is_available()) return torch::Device(torch::kCUDA);
  return torch::Device(torch::kCPU);
}
bool cuda_tests_can_run() {
  const char* on_cpu = std::getenv("CTM_CUDA_TESTS_ON_CPU");
  return torch::cuda::is_available() || (on_cpu != nullptr && std::string(on_cpu) == "1");
}

#define CTM_REQUIRE_CUDA()                                              \
  do {                                                                  \
    if (!cuda_tests_can_run()) GTEST_SKIP() << "CUDA is not available"; \
  } while (0)

std::string tiny_dir() {
  return std::string(CTM_SOURCE_DIR) + "/data/models/tiny";
}

const std::vector<std::string> kQuestions = {
    "Question: Hana has 6 strawberries. She eats 3 strawberries. She finds 4 strawberries. How many "
    "strawberries "
    "does Hana have now?\nAnswer:",
    "Question: Ava has 3 boxes of candies. There are 7 candies in every box. How many candies does Ava "
    "have?\n"
    "Answer:",
    "Question: Luis has 6 eggs. He splits the eggs into 3 equal piles and keeps one pile. Leo finds 9 eggs. "
    "How "
    "many eggs does Luis have in the end?\nAnswer:"};

// Full forward of ids (no cache) on model; float32 logits [T, V] on the CPU.
torch::Tensor full_logits(model::Transformer& m, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  const int64_t T = static_cast<int64_t>(ids.size());
  const auto opts = torch::dtype(torch::kInt64).device(m.device());
  model::CausalAttention attn;
  const auto x = torch::tensor(ids, torch::kInt64).view({1, T}).to(m.device());
  return m.forward(x, torch::arange(T, opts).view({1, T}), attn)[0].to(torch::kCPU, torch::kFloat32);
}

// One request per question: n samples of max_new tokens each (EOS ignored) at temperature t (top_p 0.95).
std::vector<Request> question_requests(const text::Tokenizer& tok, int64_t n, double t, int64_t max_new) {
  std::vector<Request> reqs;
  for (size_t i = 0; i < kQuestions.size(); ++i) {
    Request r;
    r.id = static_cast<int64_t>(i);
    r.prompt_ids = tok.encode(kQuestions[i], true);
    r.params.n = n;
    r.params.temperature = t;
    r.params.top_p = 0.95;
    r.params.max_new_tokens = max_new;
    r.params.ignore_eos = true;
    reqs.push_back(r);
  }
  return reqs;
}

}  // namespace

TEST(Cuda, PrefixCacheTorchPathMatchesDenseAttentionInBf16) {
  CTM_REQUIRE_CUDA();
  torch::manual_seed(5);
  model::ModelConfig cfg;
  cfg.hidden_size = 256;
  cfg.num_layers = 2;
  cfg.num_heads = 8;
  cfg.num_kv_heads = 2;
  cfg.head_dim = 32;
  cfg.intermediate_size = 128;
  cfg.vocab_size = 100;
  const int64_t H = cfg.num_heads, K = cfg.num_kv_heads, D = cfg.head_dim;
  const torch::Device dev = test_device();
  const auto bf = torch::kBFloat16;
  SharedPrefixCache cache(cfg, 64, 16, dev, bf);
  // Random inputs rounded to bfloat16 first: the reference sees exactly what the GPU sees.
  auto rnd = [&](std::vector<int64_t> shape) { return torch::randn(shape).to(bf).to(torch::kFloat32); };
  const int64_t PA = 37, PB = 9, steps = 12;
  BlockList pa, pb;
  ASSERT_TRUE(cache.allocate(cache.blocks_for(PA), pa));
  ASSERT_TRUE(cache.allocate(cache.blocks_for(PB), pb));
  double prefill_err = 0;
  auto prefill = [&](const BlockList& blocks, int64_t P) {
    const auto q = rnd({1, H, P, D}), k = rnd({1, K, P, D}), v = rnd({1, K, P, D});
    cache.begin_prefill(blocks);
    torch::Tensor out;
    for (int64_t layer = 0; layer < cfg.num_layers; ++layer)
      out = cache.attend(layer, q.to(dev, bf), k.to(dev, bf), v.to(dev, bf)).to(torch::kCPU, torch::kFloat64);
    for (int64_t t = 0; t < P; ++t) {
      const auto want =
          test::dense_attention(q[0].select(1, t), k[0].narrow(1, 0, t + 1), v[0].narrow(1, 0, t + 1));
      prefill_err = std::max(prefill_err, (out[0].select(1, t) - want).abs().max().item<double>());
    }
    return std::make_pair(k[0], v[0]);
  };
  auto [ka, va] = prefill(pa, PA);
  auto [kb, vb] = prefill(pb, PB);
  std::vector<torch::Tensor> dk = {ka, kb, ka}, dv = {va, vb, va};
  const std::vector<const BlockList*> prefix_of = {&pa, &pb, &pa};
  const std::vector<int64_t> plen = {PA, PB, PA};
  std::vector<BlockList> suffix(3);
  for (auto& s : suffix) ASSERT_TRUE(cache.allocate(cache.blocks_for(steps), s));
  double decode_err = 0;
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<SharedPrefixCache::Slot> slots;
    for (int64_t s = 0; s < 3; ++s) slots.push_back({prefix_of[s], plen[s], &suffix[s], step});
    cache.begin_decode(slots);
    const auto q = rnd({3, H, 1, D}), k = rnd({3, K, 1, D}), v = rnd({3, K, 1, D});
    torch::Tensor out;
    for (int64_t layer = 0; layer < cfg.num_layers; ++layer)
      out = cache.attend(layer, q.to(dev, bf), k.to(dev, bf), v.to(dev, bf)).to(torch::kCPU, torch::kFloat64);
    for (int64_t s = 0; s < 3; ++s) {
      dk[s] = torch::cat({dk[s], k[s]}, 1);
      dv[s] = torch::cat({dv[s], v[s]}, 1);
      const auto want = test::dense_attention(q[s].select(1, 0), dk[s], dv[s]);
      decode_err = std::max(decode_err, (out[s].select(1, 0) - want).abs().max().item<double>());
    }
  }
  std::cout << "[cuda] " << dev << ", KV cache vs dense float64: prefill max abs error " << prefill_err
            << ", decode " << decode_err << "\n";
  // Outputs are O(1); bfloat16 keeps 8 significant bits (relative rounding 2^-9 ~ 2e-3), and the softmax
  // weights may be rounded before the weighted sum (libtorch 1.x's path on the CPU: 0.02).
  // A wrong mask, position or block shows as errors of order 1.
  EXPECT_LT(prefill_err, 5e-2);
  EXPECT_LT(decode_err, 5e-2);
}

TEST(Cuda, KvCacheDecodeMatchesFullForwardOnTheTinyModel) {
  CTM_REQUIRE_CUDA();
  torch::NoGradGuard no_grad;
  const torch::Device dev = test_device();
  auto gpu = model::load_model(tiny_dir(), dev, torch::kBFloat16);
  auto cpu = model::load_model(tiny_dir(), torch::kCPU, torch::kFloat32);
  const auto tok = text::Tokenizer::load(tiny_dir());
  const auto opts = torch::dtype(torch::kInt64).device(dev);
  const int64_t steps = 24;
  double worst_rel_decode_vs_full = 0, worst_decode_vs_cpu = 0, worst_full_vs_cpu = 0;
  int64_t argmax_disagree = 0, positions = 0;
  for (const auto& q : kQuestions) {
    const auto prompt = tok.encode(q, true);
    const int64_t P = static_cast<int64_t>(prompt.size());
    SharedPrefixCache cache(gpu->config(), 64, 16, dev, torch::kBFloat16);
    BlockList prefix, suffix;
    ASSERT_TRUE(cache.allocate(cache.blocks_for(P), prefix));
    ASSERT_TRUE(cache.allocate(cache.blocks_for(steps), suffix));
    std::vector<int64_t> ids(prompt.begin(), prompt.end());
    cache.begin_prefill(prefix);
    auto last = gpu->forward(torch::tensor(ids, torch::kInt64).view({1, P}).to(dev),
                             torch::arange(P, opts).view({1, P}), cache)[0][P - 1];
    std::vector<torch::Tensor> decode_rows;  // logits predicting position P + i, from the cache
    for (int64_t i = 0; i < steps; ++i) {
      decode_rows.push_back(last.to(torch::kCPU, torch::kFloat32));
      const int64_t next = last.argmax().item<int64_t>();
      ids.push_back(next);
      cache.begin_decode({{&prefix, P, &suffix, i}});
      last = gpu->forward(torch::tensor({next}, torch::kInt64).view({1, 1}).to(dev),
                          torch::full({1, 1}, P + i, opts), cache)[0][0];
    }
    const auto dec = torch::stack(decode_rows);                        // [steps, V]
    const auto full = full_logits(*gpu, ids).narrow(0, P - 1, steps);  // same positions, no cache
    const auto ref = full_logits(*cpu, ids).narrow(0, P - 1, steps);   // float32 on the CPU
    const double scale = ref.abs().max().item<double>();
    worst_rel_decode_vs_full =
        std::max(worst_rel_decode_vs_full, (dec - full).abs().max().item<double>() / scale);
    worst_decode_vs_cpu = std::max(worst_decode_vs_cpu, (dec - ref).abs().max().item<double>() / scale);
    worst_full_vs_cpu = std::max(worst_full_vs_cpu, (full - ref).abs().max().item<double>() / scale);
    // Greedy choices against the float32 reference where its top two are clearly apart.
    const auto top2 = ref.topk(2, -1);
    const auto margin = std::get<0>(top2).select(1, 0) - std::get<0>(top2).select(1, 1);
    const auto ref_arg = std::get<1>(top2).select(1, 0), dec_arg = dec.argmax(-1);
    for (int64_t i = 0; i < steps; ++i) {
      if (margin[i].item<double>() < 0.05 * scale) continue;
      ++positions;
      argmax_disagree += ref_arg[i].item<int64_t>() != dec_arg[i].item<int64_t>();
    }
  }
  std::cout << "[cuda] " << dev
            << ", tiny model, logits relative to max |logit|: decode vs full forward (both bf16) "
            << worst_rel_decode_vs_full << ", decode vs CPU float32 " << worst_decode_vs_cpu
            << ", full forward vs CPU float32 " << worst_full_vs_cpu << "; greedy disagreements "
            << argmax_disagree << " of " << positions << " clear positions\n";
  EXPECT_LT(worst_rel_decode_vs_full, 0.05);
  EXPECT_LT(worst_decode_vs_cpu, std::max(0.05, 2.0 * worst_full_vs_cpu));
  EXPECT_EQ(argmax_disagree, 0);
}

TEST(Cuda, EngineGreedyTokensAreArgmaxesOfFullForwards) {
  CTM_REQUIRE_CUDA();
  auto gpu = model::load_model(tiny_dir(), test_device(), torch::kBFloat16);
  const auto tok = text::Tokenizer::load(tiny_dir());
  const std::vector<Request> reqs = question_requests(tok, 1, 0.0, 32);
  EngineOptions o;
  o.max_batch = 2;  // continuous batching: 3 requests, 2 slots
  o.block_size = 4;
  o.progress = false;
  Engine engine(*gpu, tok, o);
  const auto results = engine.generate(reqs);
  ASSERT_EQ(results.size(), reqs.size());
  double worst_gap = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_EQ(results[i].completions.size(), 1u);
    const auto& c = results[i].completions[0];
    ASSERT_EQ(c.token_ids.size(), 32u);
    std::vector<int64_t> ids(reqs[i].prompt_ids.begin(), reqs[i].prompt_ids.end());
    ids.insert(ids.end(), c.token_ids.begin(), c.token_ids.end());
    const int64_t P = static_cast<int64_t>(reqs[i].prompt_ids.size());
    const auto logits = full_logits(*gpu, ids);
    for (size_t j = 0; j < c.token_ids.size(); ++j) {
      const auto row = logits[P - 1 + static_cast<int64_t>(j)];
      // How far the engine's token is below the full forward's best (0 when it is the argmax).
      const double gap = row.max().item<double>() - row[c.token_ids[j]].item<double>();
      worst_gap = std::max(worst_gap, gap / row.abs().max().item<double>());
    }
  }
  std::cout << "[cuda] " << gpu->device() << ", engine greedy token vs full-forward argmax: worst gap "
            << worst_gap << " of max |logit|\n";
  EXPECT_LT(worst_gap, 0.02);
}

// Sampling on the device (the batched sampler: only the ids come back) draws what the CPU engine draws from
// the same seeds: in float32 the logits agree to rounding, so nearly every sample is the same token for
// token.
TEST(Cuda, EngineSamplesOnTheDeviceAsTheCpuEngine) {
  CTM_REQUIRE_CUDA();
  auto gpu = model::load_model(tiny_dir(), test_device(), torch::kFloat32);
  auto cpu = model::load_model(tiny_dir(), torch::kCPU, torch::kFloat32);
  const auto tok = text::Tokenizer::load(tiny_dir());
  const std::vector<Request> reqs = question_requests(tok, 8, 1.0, 24);
  EngineOptions o;
  o.max_batch = 16;
  o.progress = false;
  Engine on_gpu(*gpu, tok, o), on_cpu(*cpu, tok, o);
  const auto a = on_gpu.generate(reqs), b = on_cpu.generate(reqs);
  int64_t same = 0, total = 0;
  for (size_t i = 0; i < reqs.size(); ++i)
    for (size_t j = 0; j < 8; ++j, ++total)
      same += a[i].completions[j].token_ids == b[i].completions[j].token_ids;
  std::cout << "[cuda] " << gpu->device() << ", sampled on the device vs the CPU engine: " << same << " of "
            << total << " samples identical\n";
  EXPECT_GE(same, total * 9 / 10);
}
