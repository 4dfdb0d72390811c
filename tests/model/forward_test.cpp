// The transformer against the reference log-probabilities of a random Llama-3-style model computed with
// Hugging Face transformers, and the equivalences every backend must keep: KV-cache decode == full forward, a
// padded batch == each sequence alone.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ctm/io/jsonl.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "model_test_util.hpp"

namespace ctm::model {
namespace {

struct Case {
  std::vector<int64_t> ids;
  std::vector<double> logprobs;
};

std::vector<Case> fixture_cases() {
  std::vector<Case> out;
  for (const auto& j : read_jsonl(test::tiny_random_dir() + "/cases.jsonl"))
    out.push_back({j.at("ids").get<std::vector<int64_t>>(), j.at("logprobs").get<std::vector<double>>()});
  return out;
}

TEST(Forward, MatchesHuggingFaceLogprobsOneByOne) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  torch::NoGradGuard no_grad;
  const auto cases = fixture_cases();
  ASSERT_EQ(cases.size(), 5u);
  double worst = 0;
  for (const auto& c : cases) {
    const auto batch = pad_batch({c.ids}, torch::kCPU);
    const auto lp = sequence_logprobs(*model, batch)[0];
    ASSERT_EQ(lp.size(0), static_cast<int64_t>(c.logprobs.size()));
    const auto ref = torch::tensor(c.logprobs, torch::kFloat64);
    const double diff = test::max_abs_diff(lp, ref);
    EXPECT_LT(diff, 1e-4) << "case of length " << c.ids.size();
    worst = std::max(worst, diff);
  }
  std::printf("max |logprob - reference| over the fixture: %.3g\n", worst);
}

TEST(Forward, PaddedBatchEqualsEachSequenceAlone) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  torch::NoGradGuard no_grad;
  const auto cases = fixture_cases();
  std::vector<std::vector<int64_t>> seqs;
  for (const auto& c : cases) seqs.push_back(c.ids);
  const auto lp_BT = sequence_logprobs(*model, pad_batch(seqs, torch::kCPU, /*pad_id=*/7));
  for (std::size_t b = 0; b < cases.size(); ++b) {
    const int64_t n = static_cast<int64_t>(cases[b].logprobs.size());
    const auto alone = sequence_logprobs(*model, pad_batch({seqs[b]}, torch::kCPU))[0];
    EXPECT_LT(test::max_abs_diff(lp_BT[b].narrow(0, 0, n), alone), 1e-5) << "sequence " << b;
    EXPECT_LT(test::max_abs_diff(lp_BT[b].narrow(0, 0, n), torch::tensor(cases[b].logprobs)), 1e-4);
    // Entries past the sequence are zero, not leaked values.
    if (lp_BT.size(1) > n) {
      EXPECT_EQ(lp_BT[b].narrow(0, n, lp_BT.size(1) - n).abs().max().item<float>(), 0.0f);
    }
  }
}

TEST(Forward, KVCacheDecodeEqualsFullForward) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  torch::NoGradGuard no_grad;
  const auto cases = fixture_cases();
  // Batch of three sequences of different lengths: prefill right-padded prompts, then decode token by token.
  std::vector<std::vector<int64_t>> seqs = {cases[2].ids, cases[4].ids, cases[1].ids};
  const int64_t B = 3;
  std::vector<int64_t> prompt_len = {3, 6, 2};
  KVCache cache(model->config(), B, 64, torch::kCPU, torch::kFloat32);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t b = 0; b < B; ++b) prompts.emplace_back(seqs[b].begin(), seqs[b].begin() + prompt_len[b]);
  auto pb = pad_batch(prompts, torch::kCPU, /*pad_id=*/5);
  auto logits_prefill = model->forward(pb.ids_BT, cache.next_positions(pb.ids_BT.size(1)), cache);
  for (int64_t b = 0; b < B; ++b) cache.set_length(b, prompt_len[b]);

  // Reference: the full forward of each sequence alone.
  std::vector<torch::Tensor> full;
  for (int64_t b = 0; b < B; ++b) {
    auto ids = torch::tensor(seqs[b], torch::kInt64).unsqueeze(0);
    auto pos = torch::arange(ids.size(1), torch::kInt64).unsqueeze(0);
    CausalAttention attn;
    full.push_back(model->forward(ids, pos, attn)[0]);  // [T, V]
  }
  for (int64_t b = 0; b < B; ++b)
    EXPECT_LT(test::max_abs_diff(logits_prefill[b].narrow(0, 0, prompt_len[b]),
                                 full[b].narrow(0, 0, prompt_len[b])),
              1e-4);
  // Decode: each sequence feeds its next true token (teacher forcing); a finished sequence feeds a dummy.
  for (int step = 0; step < 12; ++step) {
    std::vector<int64_t> next(B);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t pos = cache.lengths()[b];
      next[b] = pos < static_cast<int64_t>(seqs[b].size()) ? seqs[b][pos] : 1;
    }
    auto ids = torch::tensor(next, torch::kInt64).unsqueeze(1);
    std::vector<int64_t> pos_before = cache.lengths();
    auto logits = model->forward(ids, cache.next_positions(1), cache);  // [B, 1, V]
    for (int64_t b = 0; b < B; ++b) {
      if (pos_before[b] >= static_cast<int64_t>(seqs[b].size())) continue;
      EXPECT_LT(test::max_abs_diff(logits[b][0], full[b][pos_before[b]]), 1e-4)
          << "sequence " << b << " position " << pos_before[b];
    }
  }
}

TEST(Forward, MultiTokenAppendToCacheEqualsFullForward) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  torch::NoGradGuard no_grad;
  const auto ids = fixture_cases()[2].ids;  // 17 tokens: prefill 5, then chunks of 4 and 8
  auto all = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  CausalAttention attn;
  const auto full = model->forward(all, torch::arange(all.size(1), torch::kInt64).unsqueeze(0), attn)[0];
  KVCache cache(model->config(), 1, 32, torch::kCPU, torch::kFloat32);
  int64_t at = 0;
  for (int64_t n : {5, 4, 8}) {
    auto chunk = all.narrow(1, at, n);
    auto logits = model->forward(chunk, cache.next_positions(n), cache)[0];
    EXPECT_LT(test::max_abs_diff(logits, full.narrow(0, at, n)), 1e-4) << "chunk at " << at;
    at += n;
  }
  EXPECT_EQ(cache.lengths()[0], 17);
}

TEST(Forward, SaveLoadRoundTripIsExact) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  const std::string dir = test::fresh_dir("save_load");
  save_model(*model, dir);
  auto again = load_model(dir, torch::kCPU, torch::kFloat32);
  const auto a = model->named_parameters(), b = again->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // Sharded save (tiny shards) loads back the same.
  const std::string sharded = test::fresh_dir("save_sharded");
  save_model(*model, sharded, /*max_shard_bytes=*/100000);
  EXPECT_TRUE(file_exists(sharded + "/model.safetensors.index.json"));
  EXPECT_FALSE(file_exists(sharded + "/model.safetensors"));
  auto from_shards = load_model(sharded, torch::kCPU, torch::kFloat32);
  const auto c = from_shards->named_parameters();
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i].second, c[i].second)) << a[i].first;
}

TEST(Forward, LoadConvertsToBfloat16) {
  auto model = load_model(test::tiny_random_dir(), torch::kCPU, torch::kBFloat16);
  auto ref = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  EXPECT_EQ(model->embed_tokens().scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(model->embed_tokens(), ref->embed_tokens().to(torch::kBFloat16)));
  torch::NoGradGuard no_grad;
  const auto ids = fixture_cases()[2].ids;
  const auto lp16 = sequence_logprobs(*model, pad_batch({ids}, torch::kCPU))[0];
  const auto lp32 = sequence_logprobs(*ref, pad_batch({ids}, torch::kCPU))[0];
  EXPECT_LT(test::max_abs_diff(lp16, lp32), 0.1);  // bfloat16 keeps ~3 significant digits
}

}  // namespace
}  // namespace ctm::model
