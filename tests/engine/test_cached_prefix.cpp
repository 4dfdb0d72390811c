// Rollouts from cached prefixes on the fixture model: a request started from a cut of a cached prefix samples
// the same tokens as the same request with the whole prompt prefilled from scratch (the prefill's logits are
// the same bits); forbidding a first token (never drawn; the draw is the sampler's pure function of the
// renormalised logits); reference counts give every block back; the budget counts a shared block once; the
// samples do not depend on the batch; a stop request finishes the requests started and gives the blocks back.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/engine/engine.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "ctm/engine/sampler.hpp"
#include "engine_test_util.hpp"

using namespace ctm;
using namespace ctm::engine;
using ctm::engine::test::tiny;

namespace {

EngineOptions opts(int64_t max_batch = 64, int64_t block_size = 4) {
  EngineOptions o;
  o.max_batch = max_batch;
  o.progress = false;
  o.block_size = block_size;  // many block boundaries in short sequences
  return o;
}

// A trajectory-like sequence: a prompt and a response, 45 tokens.
std::vector<int32_t> trajectory() {
  auto ids =
      tiny().tokenizer.encode("Question: Tom has 12 apples and eats 5. How many are left? Answer: 7", false);
  ids.resize(45, 65);
  return ids;
}

Request sampled(int64_t id, int64_t n, double t, int64_t max_new) {
  Request r = test::sampling_request(id, n, t, max_new);
  r.seed = 11;
  return r;
}

Request from_cut(const PrefixHandle& h, int64_t L, Request r) {
  r.prefix = h;
  r.prefix_len = L;
  return r;
}

Request full_prompt(const std::vector<int32_t>& ids, int64_t L, Request r) {
  r.prompt_ids.assign(ids.begin(), ids.begin() + L);
  return r;
}

void expect_same_samples(const RequestOutput& a, const RequestOutput& b, const std::string& what) {
  ASSERT_EQ(a.completions.size(), b.completions.size()) << what;
  for (size_t j = 0; j < a.completions.size(); ++j) {
    EXPECT_EQ(a.completions[j].token_ids, b.completions[j].token_ids) << what << ", sample " << j;
    EXPECT_EQ(a.completions[j].text, b.completions[j].text) << what << ", sample " << j;
  }
}

}  // namespace

TEST(CachedPrefix, PrefillLogitsAreTheSameBitsForEveryCut) {
  // The logits at position L-1 of the 45-token prefix against a prefix of just L tokens, prefilled on its
  // own: one forward's rows do not depend on what comes after them or on the chunking (CPU float32 kernels).
  const auto ids = trajectory();
  Engine engine(*tiny().model, tiny().tokenizer, opts());
  const auto whole = engine.cache_prefix(ids);
  ASSERT_EQ(whole->vocab(), tiny().model->config().vocab_size);
  for (int64_t L : {1, 3, 4, 5, 8, 16, 17, 44, 45}) {
    const std::vector<int32_t> head(ids.begin(), ids.begin() + L);
    const auto part = engine.cache_prefix(head, L - 1);
    EXPECT_EQ(std::memcmp(part->logits(L - 1), whole->logits(L - 1), sizeof(float) * whole->vocab()), 0)
        << "cut " << L;
  }
  // And against the model's own (torch) forward, within float tolerance.
  torch::NoGradGuard no_grad;
  const int64_t T = static_cast<int64_t>(ids.size());
  model::CausalAttention attn;
  const auto ref =
      tiny().model->forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, T}),
                            torch::arange(T).view({1, T}), attn)[0];
  const auto got = torch::from_blob(const_cast<float*>(whole->logits(0)), {T, whole->vocab()});
  const double err = (got - ref).abs().max().item<double>();
  EXPECT_LT(err, 1e-4) << "max abs difference to the torch forward " << err;
}

TEST(CachedPrefix, RequestFromACutSamplesLikeTheFullPrompt) {
  const auto ids = trajectory();
  Engine engine(*tiny().model, tiny().tokenizer, opts());
  const auto h = engine.cache_prefix(ids);
  for (int64_t L : {1, 3, 4, 5, 8, 16, 17, 30, 44, 45}) {
    for (double t : {0.0, 1.0}) {
      const Request base = sampled(100 + L, t > 0 ? 6 : 1, t, 12);
      const auto cut = engine.generate({from_cut(h, L, base)});
      const auto full = engine.generate({full_prompt(ids, L, base)});
      expect_same_samples(cut[0], full[0], str("cut ", L, " t ", t));
      EXPECT_EQ(engine.stats().reused_tokens, 0);
    }
  }
  // A cut plus tokens of its own (a partly used block is copied, never written): the same as the full prompt.
  for (int64_t L : {1, 4, 6, 16, 41}) {
    Request r = from_cut(h, L, sampled(7, 5, 1.0, 10));
    r.prompt_ids = {ids[L], 33, 34, 35};
    Request f = sampled(7, 5, 1.0, 10);
    f.prompt_ids.assign(ids.begin(), ids.begin() + L);
    f.prompt_ids.insert(f.prompt_ids.end(), r.prompt_ids.begin(), r.prompt_ids.end());
    const auto cut = engine.generate({r});
    EXPECT_EQ(engine.stats().reused_tokens, L);
    EXPECT_EQ(engine.stats().prefill_tokens, 4);
    expect_same_samples(cut[0], engine.generate({f})[0], str("cut ", L, " + 4 tokens"));
  }
  // The cached prefix itself is unchanged by all of it.
  const auto again = engine.cache_prefix(ids);
  EXPECT_EQ(std::memcmp(again->logits(0), h->logits(0), sizeof(float) * h->vocab() * h->size()), 0);
}

TEST(CachedPrefix, CutWithoutKeptLogitsRunsItsLastToken) {
  const auto ids = trajectory();
  Engine engine(*tiny().model, tiny().tokenizer, opts());
  const auto h = engine.cache_prefix(ids, /*logits_from=*/30);
  EXPECT_FALSE(h->has_logits(29));
  EXPECT_THROW(h->logits(29), Error);
  const Request base = sampled(3, 4, 1.0, 8);
  const auto cut = engine.generate({from_cut(h, 20, base)});
  EXPECT_EQ(engine.stats().prefill_tokens, 1);
  expect_same_samples(cut[0], engine.generate({full_prompt(ids, 20, base)})[0], "cut 20");
  engine.generate({from_cut(h, 31, base)});
  EXPECT_EQ(engine.stats().prefill_tokens, 0);  // position 30's logits are kept
}

TEST(CachedPrefix, ReferenceCountsGiveEveryBlockBack) {
  const auto ids = trajectory();
  Engine engine(*tiny().model, tiny().tokenizer, opts());
  EXPECT_EQ(engine.kv_blocks_in_use(), 0);
  auto h = engine.cache_prefix(ids);
  EXPECT_EQ(engine.kv_blocks_in_use(), 12);  // 45 tokens in blocks of 4
  std::vector<Request> reqs;
  for (int64_t L = 1; L <= 45; L += 4) {
    reqs.push_back(from_cut(h, L, sampled(L, 3, 1.0, 6)));
    Request r = from_cut(h, L, sampled(1000 + L, 2, 1.0, 5));
    r.prompt_ids = {40, 41};
    reqs.push_back(r);
  }
  engine.generate(reqs);
  EXPECT_EQ(engine.kv_blocks_in_use(), 12)
      << "requests gave their blocks back, the cached prefix keeps its own";
  reqs.clear();  // the requests' handles
  {
    PrefixHandle copy = h;
    h.reset();
    EXPECT_EQ(engine.kv_blocks_in_use(), 12) << "a second handle keeps the blocks";
  }
  EXPECT_EQ(engine.kv_blocks_in_use(), 0);
  // Requests still hold the prefix when the caller has dropped its handle.
  std::vector<Request> orphan = {from_cut(engine.cache_prefix(ids), 9, sampled(1, 2, 1.0, 4))};
  EXPECT_EQ(engine.kv_blocks_in_use(), 12);
  engine.generate(orphan);
  orphan.clear();
  EXPECT_EQ(engine.kv_blocks_in_use(), 0);
}

TEST(CachedPrefix, BudgetCountsASharedBlockOnce) {
  // 45 tokens = 12 blocks of 4. Eight requests cut at 44 (no tokens of their own), two samples each of at
  // most 9 tokens (2 blocks each: 8 keys). Budget: the prefix and two samples = 16 blocks. Without sharing, a
  // single request would need its own 11 prompt blocks next to the cached 12.
  const auto ids = trajectory();
  const int64_t block_bytes = 4 * SharedPrefixCache::bytes_per_token(tiny().model->config(), torch::kFloat32);
  EngineOptions o = opts();
  o.kv_budget_bytes = 16 * block_bytes;
  Engine tight(*tiny().model, tiny().tokenizer, o);
  const auto h = tight.cache_prefix(ids);
  std::vector<Request> reqs;
  for (int64_t i = 0; i < 8; ++i) reqs.push_back(from_cut(h, 44, sampled(i, 2, 1.0, 9)));
  const auto got = tight.generate(reqs);
  EXPECT_LE(tight.stats().peak_kv_used_bytes, o.kv_budget_bytes);
  EXPECT_EQ(tight.stats().peak_kv_used_bytes, 16 * block_bytes);
  EXPECT_EQ(tight.stats().max_active, 2);
  EXPECT_LE(tight.kv_blocks_allocated(), 16);
  Engine roomy(*tiny().model, tiny().tokenizer, opts());
  std::vector<Request> full;
  for (int64_t i = 0; i < 8; ++i) full.push_back(full_prompt(ids, 44, sampled(i, 2, 1.0, 9)));
  const auto want = roomy.generate(full);
  for (size_t i = 0; i < reqs.size(); ++i) expect_same_samples(got[i], want[i], str("request ", i));
  // Samples of up to 18 tokens (5 blocks) do not fit next to the cached prefix: an error naming the request,
  // before any work (the request before it, which fits, is not run).
  reqs = {from_cut(h, 44, sampled(0, 2, 1.0, 9)), from_cut(h, 44, sampled(1, 2, 1.0, 18))};
  int delivered = 0;
  try {
    tight.generate(reqs, [&](const RequestOutput&) { ++delivered; });
    ADD_FAILURE() << "a request that cannot fit the budget was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("request 1 (id 1)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(delivered, 0);
  EXPECT_EQ(tight.kv_blocks_in_use(), 12);
  // Nor does a second cached prefix.
  EXPECT_THROW(tight.cache_prefix(ids), Error);
}

TEST(CachedPrefix, SamplesDoNotDependOnTheBatch) {
  const auto ids = trajectory();
  const Request target = sampled(42, 10, 1.0, 14);
  auto run = [&](int64_t max_batch, bool crowd) {
    Engine engine(*tiny().model, tiny().tokenizer, opts(max_batch));
    const auto h = engine.cache_prefix(ids);
    std::vector<Request> reqs = {from_cut(h, 23, target)};
    if (crowd) {
      for (int64_t L = 2; L < 45; L += 3)
        reqs.push_back(from_cut(h, L, sampled(L, 1 + L % 4, 0.8, 3 + L % 9)));
      std::swap(reqs[0], reqs[5]);
      reqs.push_back(full_prompt(ids, 30, sampled(7, 3, 0.0, 6)));
    }
    const auto out = engine.generate(reqs);
    return out[crowd ? 5 : 0];
  };
  const auto alone = run(64, false);
  expect_same_samples(alone, run(1, false), "one slot");
  expect_same_samples(alone, run(64, true), "among other requests");
  expect_same_samples(alone, run(7, true), "among other requests, 7 slots");
}

// ---- forbidding the first token
// ---------------------------------------------------------------------------------

TEST(Forbid, SamplerRenormalisesByHand) {
  // softmax([2, 1, 0, -1]) without token 0 = softmax([1, 0, -1]) = 0.6652, 0.2447, 0.0900 for ids 1, 2, 3.
  const std::vector<float> logits = {2.f, 1.f, 0.f, -1.f};
  const double z = std::exp(1.0) + 1.0 + std::exp(-1.0);
  Nucleus n = top_p_nucleus(logits.data(), 4, 1.0, 1.0, {0});
  ASSERT_EQ(n.ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_NEAR(n.probs[0], std::exp(1.0) / z, 1e-12);
  EXPECT_NEAR(n.probs[1], 1.0 / z, 1e-12);
  EXPECT_NEAR(n.probs[2], std::exp(-1.0) / z, 1e-12);
  // top_p after renormalising: 0.6652 < 0.9, then 0.9100 >= 0.9: ids 1 and 2, renormalised again.
  n = top_p_nucleus(logits.data(), 4, 1.0, 0.9, {0});
  ASSERT_EQ(n.ids, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(n.probs[0], std::exp(1.0) / (std::exp(1.0) + 1.0), 1e-12);
  // Temperature after renormalising: t = 2 gives softmax([0.5, 0, -0.5]) over ids 1, 2, 3.
  n = top_p_nucleus(logits.data(), 4, 2.0, 1.0, {0});
  const double z2 = std::exp(0.5) + 1.0 + std::exp(-0.5);
  EXPECT_NEAR(n.probs[0], std::exp(0.5) / z2, 1e-12);
  EXPECT_NEAR(n.probs[2], std::exp(-0.5) / z2, 1e-12);
  // Two forbidden tokens; greedy takes the best allowed one.
  n = top_p_nucleus(logits.data(), 4, 1.0, 1.0, {0, 2});
  EXPECT_EQ(n.ids, (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(sample_token(logits.data(), 4, 0.0, 1.0, 0.0, {0}), 1);
  EXPECT_EQ(sample_token(logits.data(), 4, 0.0, 1.0, 0.0, {1, 0}), 2);
}

TEST(Forbid, TokenHoldingAllTheMassIsRenormalisedFromLogits) {
  // In float32, softmax([100, 0, -1]) is [1, 0, 0]: the other tokens' share comes from their logits.
  const std::vector<float> logits = {100.f, 0.f, -1.f};
  const Nucleus n = top_p_nucleus(logits.data(), 3, 1.0, 1.0, {0});
  ASSERT_EQ(n.ids, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(n.probs[0], std::exp(1.0) / (1.0 + std::exp(1.0)), 1e-12);
  EXPECT_NEAR(n.probs[1], 1.0 / (1.0 + std::exp(1.0)), 1e-12);
  // Only when nothing is left is there no distribution: an error, never the forbidden token.
  EXPECT_THROW(sample_token(logits.data(), 3, 1.0, 0.95, 0.5, {0, 1, 2}), Error);
  EXPECT_THROW(sample_token(logits.data(), 3, 0.0, 0.95, 0.5, {2, 1, 0}), Error);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> single = {3.f, -inf, -inf};
  EXPECT_THROW(sample_token(single.data(), 3, 1.0, 1.0, 0.5, {0}), Error);
  EXPECT_THROW(sample_token(logits.data(), 3, 1.0, 1.0, 0.5, {3}), Error);  // outside the vocabulary
}

TEST(Forbid, InverseCdfFollowsTheRenormalisedNucleus) {
  const std::vector<float> logits = {0.3f, 2.0f, -0.4f, 1.1f, 0.9f, -3.0f};
  const Nucleus n = top_p_nucleus(logits.data(), 6, 0.7, 0.9, {1});
  const int grid = 100000;
  std::map<int32_t, int> counts;
  for (int k = 0; k < grid; ++k) ++counts[sample_token(logits.data(), 6, 0.7, 0.9, (k + 0.5) / grid, {1})];
  EXPECT_EQ(counts.count(1), 0u);
  ASSERT_EQ(counts.size(), n.ids.size());
  for (size_t i = 0; i < n.ids.size(); ++i)
    EXPECT_NEAR(static_cast<double>(counts[n.ids[i]]) / grid, n.probs[i], 2.0 / grid) << "token " << n.ids[i];
}

TEST(Forbid, EngineFirstDrawIsThePureSamplerOverTheCachedLogits) {
  // The "without" rollouts of position 30: cut at 30, the original token ids[30] forbidden. Each sample's
  // first token is exactly sample_token over the prefix's logits at 29 with the sample's first uniform.
  const auto ids = trajectory();
  Engine engine(*tiny().model, tiny().tokenizer, opts());
  const auto h = engine.cache_prefix(ids);
  const int64_t L = 30, n = 400;
  const int32_t original = ids[L];
  Request r = from_cut(h, L, sampled(5, n, 1.0, 2));
  r.params.top_p = 1.0;
  r.params.forbid_first_tokens = {original};
  const auto out = engine.generate({r})[0];
  const Nucleus want = top_p_nucleus(h->logits(L - 1), engine.vocab(), 1.0, 1.0, {original});
  std::map<int32_t, int> counts;
  for (int64_t j = 0; j < n; ++j) {
    const auto& c = out.completions[j];
    ASSERT_EQ(c.token_ids.size(), 2u);
    EXPECT_NE(c.token_ids[0], original) << "sample " << j;
    Rng rng(mix_seed(r.seed, r.id, j));
    EXPECT_EQ(c.token_ids[0],
              sample_token(h->logits(L - 1), engine.vocab(), 1.0, 1.0, rng.uniform(), {original}))
        << "sample " << j;
    ++counts[c.token_ids[0]];
  }
  // Statistically: the first tokens follow the renormalised distribution (chi-square over the likely tokens).
  double chi2 = 0, p_rest = 1;
  int observed_rest = n, cells = 0;
  for (size_t i = 0; i < want.ids.size(); ++i) {
    const double expected = want.probs[i] * n;
    if (expected < 10) continue;
    const double d = counts[want.ids[i]] - expected;
    chi2 += d * d / expected;
    p_rest -= want.probs[i];
    observed_rest -= counts[want.ids[i]];
    ++cells;
  }
  if (p_rest * n >= 10) {
    chi2 += std::pow(observed_rest - p_rest * n, 2) / (p_rest * n);
    ++cells;
  }
  ASSERT_GE(cells, 2);
  EXPECT_LT(chi2, 3.0 * cells + 10) << "chi-square " << chi2 << " over " << cells << " cells";
  // Later draws are not restricted: the forbidden token may come second; and greedy takes the runner-up.
  Request g = from_cut(h, L, sampled(5, 1, 0.0, 1));
  g.params.forbid_first_tokens = {argmax_token(h->logits(L - 1), engine.vocab())};
  const int32_t runner_up =
      sample_token(h->logits(L - 1), engine.vocab(), 0.0, 1.0, 0.0, g.params.forbid_first_tokens);
  EXPECT_EQ(engine.generate({g})[0].completions[0].token_ids[0], runner_up);
  // Every token forbidden: the request is rejected up front.
  Request all = from_cut(h, L, sampled(5, 1, 1.0, 1));
  for (int32_t t = 0; t < engine.vocab(); ++t) all.params.forbid_first_tokens.push_back(t);
  EXPECT_THROW(engine.generate({all}), Error);
}

TEST(CachedPrefix, RejectsBadCuts) {
  const auto ids = trajectory();
  Engine engine(*tiny().model, tiny().tokenizer, opts());
  const auto h = engine.cache_prefix(ids);
  EXPECT_THROW(engine.generate({from_cut(h, 0, sampled(1, 1, 0.0, 2))}), Error);
  EXPECT_THROW(engine.generate({from_cut(h, 46, sampled(1, 1, 0.0, 2))}), Error);
  Engine other(*tiny().model, tiny().tokenizer, opts());
  EXPECT_THROW(other.generate({from_cut(h, 5, sampled(1, 1, 0.0, 2))}), Error);
  EXPECT_THROW(engine.cache_prefix({}), Error);
  EXPECT_THROW(engine.cache_prefix(ids, 46), Error);
  EXPECT_EQ(engine.kv_blocks_in_use(), 12);
}

TEST(CachedPrefix, StopFinishesStartedRequestsAndGivesTheirBlocksBack) {
  // A stop request (as SIGTERM) once the first request is delivered: the requests in flight finish exactly as
  // without the stop, no new one opens, and every block but the cached prefix's goes back.
  const auto ids = trajectory();
  Engine engine(*tiny().model, tiny().tokenizer, opts(8));  // two requests of 4 samples at a time
  const auto h = engine.cache_prefix(ids);
  std::vector<Request> reqs;
  for (int64_t L = 5; L < 45; L += 5) reqs.push_back(from_cut(h, L, sampled(L, 4, 1.0, 20)));
  const auto full = engine.generate(reqs);
  std::vector<int64_t> delivered;
  const auto out = engine.generate(reqs, [&](const RequestOutput& r) {
    delivered.push_back(r.index);
    request_stop();
  });
  clear_stop_request();
  EXPECT_TRUE(engine.stats().stopped);
  ASSERT_GE(delivered.size(), 1u);
  EXPECT_LT(delivered.size(), reqs.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (std::find(delivered.begin(), delivered.end(), static_cast<int64_t>(i)) != delivered.end())
      expect_same_samples(out[i], full[i], str("request ", i));
    else
      EXPECT_TRUE(out[i].completions.empty()) << "request " << i << " was not started, yet has completions";
  }
  EXPECT_EQ(engine.kv_blocks_in_use(), 12);
}
