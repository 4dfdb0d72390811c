// The sampler against hand computations and against an independent transcription of Hugging Face's
// TopPLogitsWarper (ascending sort, cumulative softmax, drop tokens whose cumulative probability is <= 1 -
// top_p, always keep the most likely one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/engine/sampler.hpp"
#include "ctm/engine/stop.hpp"

using namespace ctm;
using namespace ctm::engine;

namespace {

// token -> probability after Hugging Face's top-p filtering and renormalisation.
std::map<int32_t, double> hf_top_p(const std::vector<float>& logits, double temperature, double top_p) {
  const int64_t n = static_cast<int64_t>(logits.size());
  std::vector<double> scaled(n);
  for (int64_t i = 0; i < n; ++i) scaled[i] = logits[i] / temperature;
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  // ascending, ties: higher id first (so the descending order breaks ties by lower id)
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return scaled[a] != scaled[b] ? scaled[a] < scaled[b] : a > b; });
  const double mx = *std::max_element(scaled.begin(), scaled.end());
  double z = 0;
  for (double s : scaled) z += std::exp(s - mx);
  std::map<int32_t, double> kept;
  double cum = 0, kept_mass = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double p = std::exp(scaled[order[j]] - mx) / z;
    cum += p;
    const bool last = j == n - 1;
    if (cum > 1 - top_p || last) {
      kept[order[j]] = p;
      kept_mass += p;
    }
  }
  for (auto& kv : kept) kv.second /= kept_mass;
  return kept;
}

}  // namespace

TEST(Sampler, TopPByHand) {
  // softmax([2, 1, 0, -1]) = 0.6439, 0.2369, 0.0871, 0.0321
  const std::vector<float> logits = {1.f, 2.f, -1.f, 0.f};  // ids 1, 0, 3, 2 in descending order
  Nucleus n = top_p_nucleus(logits.data(), 4, 1.0, 0.5);
  EXPECT_EQ(n.ids, (std::vector<int32_t>{1}));
  n = top_p_nucleus(logits.data(), 4, 1.0, 0.8);  // 0.6439 < 0.8, then 0.8808 >= 0.8
  ASSERT_EQ(n.ids, (std::vector<int32_t>{1, 0}));
  EXPECT_NEAR(n.probs[0], std::exp(1.0) / (std::exp(1.0) + 1.0), 1e-12);
  n = top_p_nucleus(logits.data(), 4, 1.0, 0.95);  // 0.8808 < 0.95, then 0.9679
  EXPECT_EQ(n.ids, (std::vector<int32_t>{1, 0, 3}));
  n = top_p_nucleus(logits.data(), 4, 1.0, 0.6439);  // just under the first probability: one token
  EXPECT_EQ(n.ids, (std::vector<int32_t>{1}));
  n = top_p_nucleus(logits.data(), 4, 1.0, 1.0);  // everything, in id order
  EXPECT_EQ(n.ids, (std::vector<int32_t>{0, 1, 2, 3}));
  // temperature 2: softmax([1, 0.5, 0, -0.5]) = 0.4519, 0.2741, 0.1662, 0.1008
  n = top_p_nucleus(logits.data(), 4, 2.0, 0.8);  // 0.4519, 0.7260 < 0.8, 0.8922
  EXPECT_EQ(n.ids, (std::vector<int32_t>{1, 0, 3}));
  // Ties at the cut: equal probabilities rank by lower id. softmax([1, 1, 1, 1, 0]) = 0.2284 x 4, 0.0840.
  const std::vector<float> tied = {1.f, 1.f, 0.f, 1.f, 1.f};
  n = top_p_nucleus(tied.data(), 5, 1.0, 0.5);  // 0.2284, 0.4568 < 0.5, 0.6852
  EXPECT_EQ(n.ids, (std::vector<int32_t>{0, 1, 3}));
  for (int k = 0; k < 100; ++k) EXPECT_NE(sample_token(tied.data(), 5, 1.0, 0.5, k / 100.0), 4);
}

TEST(Sampler, TopPMatchesHuggingFaceTransformation) {
  Rng rng(7);
  for (int trial = 0; trial < 60; ++trial) {
    // Peaked, flat and large vocabularies: the flat ones force the sampler past its first candidate
    // threshold.
    const int64_t vocab = trial % 3 == 0 ? 50000 : 1 + static_cast<int64_t>(rng.below(3000));
    const double scale = trial % 3 == 0 ? 0.01 : 0.2 + 6 * rng.uniform();
    std::vector<float> logits(vocab);
    for (auto& l : logits) l = static_cast<float>(scale * rng.normal());
    const double temperature = 0.1 + 1.4 * rng.uniform();
    const double top_p = trial % 5 == 0 ? 1.0 : 0.05 + 0.9 * rng.uniform();
    const auto want = hf_top_p(logits, temperature, top_p);
    const Nucleus got = top_p_nucleus(logits.data(), vocab, temperature, top_p);
    ASSERT_EQ(got.ids.size(), want.size()) << "trial " << trial << " vocab " << vocab << " top_p " << top_p;
    double max_err = 0;
    for (size_t i = 0; i < got.ids.size(); ++i) {
      auto it = want.find(got.ids[i]);
      ASSERT_NE(it, want.end()) << "token " << got.ids[i] << " not in the reference nucleus";
      max_err = std::max(max_err, std::abs(it->second - got.probs[i]));
    }
    EXPECT_LT(max_err, 1e-9) << "trial " << trial;
  }
}

TEST(Sampler, InverseCdfFollowsTheNucleus) {
  const std::vector<float> logits = {0.3f, 2.0f, -0.4f, 1.1f, 0.9f, -3.0f};
  const double temperature = 0.7, top_p = 0.9;
  const Nucleus n = top_p_nucleus(logits.data(), 6, temperature, top_p);
  const int grid = 100000;
  std::map<int32_t, int> counts;
  for (int k = 0; k < grid; ++k)
    ++counts[sample_token(logits.data(), 6, temperature, top_p, (k + 0.5) / grid)];
  ASSERT_EQ(counts.size(), n.ids.size());
  for (size_t i = 0; i < n.ids.size(); ++i)
    EXPECT_NEAR(static_cast<double>(counts[n.ids[i]]) / grid, n.probs[i], 2.0 / grid) << "token " << n.ids[i];
  // u walks the nucleus in id order: the smallest u picks its lowest id, the largest its highest.
  EXPECT_EQ(sample_token(logits.data(), 6, temperature, top_p, 0.0),
            *std::min_element(n.ids.begin(), n.ids.end()));
  EXPECT_EQ(sample_token(logits.data(), 6, temperature, top_p, 0.999999),
            *std::max_element(n.ids.begin(), n.ids.end()));
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  const std::vector<float> logits = {0.f, 3.f, -1.f, 3.f};
  EXPECT_EQ(sample_token(logits.data(), 4, 0.0, 0.95, 0.99), 1);
  EXPECT_EQ(sample_token(logits.data(), 4, 1e-6, 0.95, 0.5), 1);
  EXPECT_EQ(argmax_token(logits.data(), 4), 1);
}

TEST(Sampler, RejectsBadArguments) {
  const std::vector<float> logits = {0.f, 1.f};
  EXPECT_THROW(sample_token(logits.data(), 2, 1.0, 0.0, 0.5), Error);
  EXPECT_THROW(sample_token(logits.data(), 2, 1.0, 0.9, 1.0), Error);
  const std::vector<float> bad = {NAN, NAN};
  EXPECT_THROW(sample_token(bad.data(), 2, 1.0, 0.9, 0.5), Error);
}

TEST(StopStrings, FirstListedStopWinsLikeVllm) {
  const std::vector<std::string> stops = {"\n\nQuestion:", ".\n\nQuestion:"};
  // Arriving in pieces: nothing until the stop string is complete.
  std::string text = "The answer is 5.\n\nQuest";
  EXPECT_FALSE(find_stop(text, 5, stops));
  text += "ion:";
  auto hit = find_stop(text, 4, stops);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->which, 0u);  // the first listed one wins, so the '.' stays in the completion
  EXPECT_EQ(text.substr(0, hit->pos), "The answer is 5.");
  // Only the window that the new text can complete is searched (old text was already checked).
  EXPECT_FALSE(find_stop("xx\n\nQuestion: yyyyyyyyyyyyyyyyyyyyy", 1, stops));
  EXPECT_FALSE(find_stop("abc", 0, stops));
}
