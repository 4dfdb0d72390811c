// The engine end to end on the fixture model: greedy against repeated full forwards, determinism across batch
// compositions, stop strings, max tokens, EOS, and the KV budget.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/engine/engine.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "ctm/model/loader.hpp"
#include "engine_test_util.hpp"

using namespace ctm;
using namespace ctm::engine;
using ctm::engine::test::tiny;

namespace {

std::vector<int32_t> encode(const std::string& s) {
  return tiny().tokenizer.encode(s, false);
}

EngineOptions quiet(int64_t max_batch = 64) {
  EngineOptions o;
  o.max_batch = max_batch;
  o.progress = false;
  o.block_size = 4;  // many block boundaries in short sequences
  return o;
}

Request make_request(int64_t id, const std::string& prompt, int64_t n, double t, int64_t max_new) {
  Request r = test::sampling_request(id, n, t, max_new);
  r.prompt_ids = encode(prompt);
  return r;
}

// Greedy by recomputing the whole sequence at every step (no cache at all).
std::vector<int32_t> greedy_by_full_forward(const std::vector<int32_t>& prompt, int64_t steps) {
  torch::NoGradGuard no_grad;
  auto& m = *tiny().model;
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  std::vector<int32_t> out;
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t T = static_cast<int64_t>(ids.size());
    model::CausalAttention attn;
    const auto logits = m.forward(torch::tensor(ids).view({1, T}), torch::arange(T).view({1, T}), attn);
    const int32_t next = static_cast<int32_t>(logits[0][T - 1].argmax().item<int64_t>());
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

const std::vector<std::string> kPrompts = {"Question: 3 + 4 =", "Hi",
                                           "The quick brown fox jumps over the lazy dog",
                                           "Answer:", "12 apples and 7 pears"};

}  // namespace

TEST(Engine, GreedyEqualsRepeatedArgmaxOverFullForwards) {
  std::vector<Request> reqs;
  for (size_t i = 0; i < kPrompts.size(); ++i) reqs.push_back(make_request(i, kPrompts[i], 1, 0.0, 17));
  Engine engine(*tiny().model, tiny().tokenizer,
                quiet(/*max_batch=*/2));  // continuous batching: 5 requests, 2 slots
  const auto results = engine.generate(reqs);
  ASSERT_EQ(results.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_EQ(results[i].completions.size(), 1u);
    const auto& c = results[i].completions[0];
    EXPECT_EQ(c.token_ids, greedy_by_full_forward(reqs[i].prompt_ids, 17)) << "prompt " << i;
    EXPECT_EQ(c.finish, FinishReason::Length);
    EXPECT_EQ(c.text, tiny().tokenizer.decode(c.token_ids));
  }
  EXPECT_EQ(engine.stats().max_active, 2);
}

TEST(Engine, SamplesDoNotDependOnTheBatch) {
  // n = 10: alone its prefix attention runs as matrix products (groups of >= 8), with one slot in the kernel.
  const Request target = make_request(7, "Question: 12 + 30 =", 10, 1.0, 24);
  auto run = [&](std::vector<Request> reqs, int64_t max_batch, size_t at) {
    Engine engine(*tiny().model, tiny().tokenizer, quiet(max_batch));
    return engine.generate(reqs)[at].completions;
  };
  const auto alone = run({target}, 64, 0);
  const auto one_slot = run({target}, 1, 0);
  std::vector<Request> mixed;
  for (int64_t i = 0; i < 30; ++i)
    mixed.push_back(
        make_request(100 + i, kPrompts[i % kPrompts.size()], 1 + i % 3, i % 2 ? 0.7 : 0.0, 5 + i % 20));
  mixed.insert(mixed.begin() + 13, target);
  const auto in_crowd = run(mixed, 64, 13);
  ASSERT_EQ(alone.size(), 10u);
  std::set<std::vector<int32_t>> distinct;
  for (size_t j = 0; j < alone.size(); ++j) {
    EXPECT_EQ(alone[j].token_ids, one_slot[j].token_ids) << "sample " << j;
    EXPECT_EQ(alone[j].token_ids, in_crowd[j].token_ids) << "sample " << j;
    EXPECT_EQ(alone[j].text, in_crowd[j].text) << "sample " << j;
    EXPECT_EQ(alone[j].token_ids.size(), 24u);
    distinct.insert(alone[j].token_ids);
  }
  EXPECT_GT(distinct.size(), 1u) << "the samples of a request draw from different streams";
  // Another seed gives other samples.
  Request reseeded = target;
  reseeded.seed = 43;
  EXPECT_NE(run({reseeded}, 64, 0)[0].token_ids, alone[0].token_ids);
}

// A request for samples 3 .. 9 continues one for 0 .. 2: together the samples of one request for 10.
TEST(Engine, FirstSampleContinuesARequest) {
  const Request whole = make_request(7, "Question: 12 + 30 =", 10, 1.0, 16);
  Request head = whole, tail = whole;
  head.params.n = 3;
  tail.params.n = 7;
  tail.first_sample = 3;
  Engine engine(*tiny().model, tiny().tokenizer, quiet(64));
  const auto all = engine.generate({whole})[0].completions;
  const auto parts = engine.generate({head, tail});
  ASSERT_EQ(parts[0].completions.size(), 3u);
  ASSERT_EQ(parts[1].completions.size(), 7u);
  for (size_t j = 0; j < 10; ++j) {
    const auto& c = j < 3 ? parts[0].completions[j] : parts[1].completions[j - 3];
    EXPECT_EQ(c.token_ids, all[j].token_ids) << "sample " << j;
  }
  EXPECT_NE(all[0].token_ids, all[3].token_ids);
  Request bad = whole;
  bad.first_sample = -1;
  EXPECT_THROW(engine.generate({bad}), Error);
}

TEST(Engine, SamplesDoNotDependOnTheWorkerCount) {
  // The small-batch matrix products, the decode attention and the draws split across ctm's CPU workers.
  std::vector<Request> reqs;
  for (int64_t i = 0; i < 24; ++i)
    reqs.push_back(
        make_request(200 + i, kPrompts[i % kPrompts.size()], 1 + i % 4, i % 3 ? 0.8 : 0.0, 6 + i % 15));
  auto run = [&](int workers) {
    set_cpu_workers(workers);
    Engine engine(*tiny().model, tiny().tokenizer, quiet(32));
    auto out = engine.generate(reqs);
    set_cpu_workers(1);
    return out;
  };
  const auto one = run(1), three = run(3);
  ASSERT_EQ(one.size(), three.size());
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].completions.size(), three[i].completions.size());
    for (size_t j = 0; j < one[i].completions.size(); ++j)
      EXPECT_EQ(one[i].completions[j].token_ids, three[i].completions[j].token_ids)
          << "request " << i << " sample " << j;
  }
}

TEST(Engine, StopStringAcrossTokenBoundaries) {
  Request r = make_request(1, "The quick brown fox", 1, 0.0, 40);
  Engine engine(*tiny().model, tiny().tokenizer, quiet());
  const auto free_run = engine.generate({r})[0].completions[0];
  // Stream the greedy tokens the way the engine does and pick a stop string that straddles the boundary after
  // the 6th token's text: the last byte of what came before and the first bytes after.
  text::IncrementalDecoder dec(tiny().tokenizer);
  std::vector<size_t> ends;  // text length after each token
  std::string text;
  for (int32_t id : free_run.token_ids) {
    text += dec.push(id);
    ends.push_back(text.size());
  }
  size_t k = 5;
  while (k + 1 < ends.size() && (ends[k] == 0 || ends[k + 1] == ends[k])) ++k;
  ASSERT_LT(k + 1, ends.size());
  const std::string stop = text.substr(ends[k] - 1, 2 + (ends[k + 1] - ends[k] > 1 ? 1 : 0));
  const size_t first = text.find(stop);
  size_t tokens_needed = 0;  // the first token after which the streamed text contains the stop string
  while (ends[tokens_needed] < first + stop.size()) ++tokens_needed;
  r.params.stop = {"never appears \x01", stop};
  const auto stopped = engine.generate({r})[0].completions[0];
  EXPECT_EQ(stopped.finish, FinishReason::Stop);
  EXPECT_EQ(stopped.text, text.substr(0, first));
  EXPECT_EQ(stopped.token_ids,
            std::vector<int32_t>(free_run.token_ids.begin(), free_run.token_ids.begin() + tokens_needed + 1));
}

TEST(Engine, MaxNewTokensAndEos) {
  Request r = make_request(3, "Hi", 1, 0.0, 12);
  Engine plain(*tiny().model, tiny().tokenizer, quiet());
  const auto free_run = plain.generate({r})[0].completions[0];
  ASSERT_EQ(free_run.token_ids.size(), 12u);
  EXPECT_EQ(free_run.finish, FinishReason::Length);
  r.params.max_new_tokens = 1;  // the prefill's token only
  EXPECT_EQ(plain.generate({r})[0].completions[0].token_ids, std::vector<int32_t>{free_run.token_ids[0]});
  // Make the 5th greedy token the EOS: generation ends there, the text leaves it out, the ids keep it.
  r.params.max_new_tokens = 12;
  r.params.ignore_eos = false;
  EngineOptions o = quiet();
  o.eos_ids = {free_run.token_ids[4]};
  const size_t first_eos =
      std::find(free_run.token_ids.begin(), free_run.token_ids.end(), free_run.token_ids[4]) -
      free_run.token_ids.begin();
  Engine with_eos(*tiny().model, tiny().tokenizer, o);
  const auto c = with_eos.generate({r})[0].completions[0];
  EXPECT_EQ(c.finish, FinishReason::Eos);
  const std::vector<int32_t> want(free_run.token_ids.begin(), free_run.token_ids.begin() + first_eos + 1);
  EXPECT_EQ(c.token_ids, want);
  EXPECT_EQ(c.text, tiny().tokenizer.decode(std::vector<int32_t>(want.begin(), want.end() - 1)));
  // The model's own EOS (config eos_token_id 257) is used by default.
  Engine defaults(*tiny().model, tiny().tokenizer, EngineOptions{});
  EXPECT_EQ(defaults.options().eos_ids, std::vector<int32_t>{257});
}

TEST(Engine, KvBudgetIsRespected) {
  std::vector<Request> reqs;
  for (int64_t i = 0; i < 8; ++i) reqs.push_back(make_request(i, kPrompts[i % kPrompts.size()], 2, 0.8, 20));
  Engine roomy(*tiny().model, tiny().tokenizer, quiet());
  const auto want = roomy.generate(reqs);
  EXPECT_EQ(roomy.stats().max_active, 16);

  EngineOptions o = quiet();
  const int64_t per_token = SharedPrefixCache::bytes_per_token(tiny().model->config(), torch::kFloat32);
  o.kv_budget_bytes = per_token * 4 * 30;  // 30 blocks of 4 tokens: a prompt and a few samples at a time
  Engine tight(*tiny().model, tiny().tokenizer, o);
  const auto got = tight.generate(reqs);
  EXPECT_LE(tight.stats().kv_pool_bytes, o.kv_budget_bytes);
  EXPECT_LE(tight.stats().peak_kv_used_bytes, o.kv_budget_bytes);
  EXPECT_LT(tight.stats().max_active, 16);
  EXPECT_GE(tight.stats().max_active, 2);
  for (size_t i = 0; i < reqs.size(); ++i)
    for (size_t j = 0; j < 2; ++j)
      EXPECT_EQ(got[i].completions[j].token_ids, want[i].completions[j].token_ids);

  o.kv_budget_bytes = per_token * 4 * 3;  // smaller than a single request's worst case
  Engine too_small(*tiny().model, tiny().tokenizer, o);
  EXPECT_THROW(too_small.generate(reqs), Error);
}

TEST(Engine, RejectsBadRequests) {
  Engine engine(*tiny().model, tiny().tokenizer, quiet());
  Request r = make_request(0, "x", 1, 0.0, 4);
  r.prompt_ids.clear();
  EXPECT_THROW(engine.generate({r}), Error);
  r = make_request(0, "x", 1, 0.0, 4);
  r.params.top_p = 0;
  EXPECT_THROW(engine.generate({r}), Error);
  r = make_request(0, "x", 1, 0.0, 4);
  r.prompt_ids = {999};
  EXPECT_THROW(engine.generate({r}), Error);
  r = make_request(0, "x", kMaxSamplesPerRequest + 1, 1.0, 4);
  EXPECT_THROW(engine.generate({r}), Error);
}

TEST(Engine, RunsTheBlocksThroughTheModelsBlockRunner) {
  // A sharded model supplies its weights per block through a block runner; the engine must go through it
  // (the row decoder, which reads the weights directly, steps aside) and sample the same greedy tokens.
  auto m = model::load_model(test::tiny_model_dir(), torch::kCPU, torch::kFloat32);
  int64_t layer_calls = 0, head_calls = 0;
  m->set_block_runner([&](const model::BlockCall& call, const torch::Tensor& x) {
    layer_calls += call.block == model::Block::kLayer;
    head_calls += call.block == model::Block::kHead;
    return call.run(x);
  });
  Engine engine(*m, tiny().tokenizer, quiet());
  const Request r = make_request(0, kPrompts[0], 1, 0.0, 6);
  const auto out = engine.generate({r});
  EXPECT_EQ(out[0].completions[0].token_ids, greedy_by_full_forward(r.prompt_ids, 6));
  EXPECT_EQ(head_calls, 6) << "the prompt's logits, then one decode step per token but the last";
  EXPECT_EQ(layer_calls, 6 * m->config().num_layers);
}
