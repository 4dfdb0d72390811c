// The batched sampler (the GPU's decode draws) against the per-sample sampler, row by row, on CPU tensors:
// the same rule in float64, so the same token for the same uniform.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/engine/batch_sampler.hpp"
#include "ctm/engine/sampler.hpp"

using namespace ctm;
using namespace ctm::engine;

namespace {

// Rows of several shapes: peaked, flat, with exact ties (rounded to multiples of 0.5), and a very cold one.
torch::Tensor test_logits(int64_t rows, int64_t vocab) {
  torch::manual_seed(11);
  auto l = torch::randn({rows, vocab}) * 3;
  for (int64_t r = 0; r < rows; r += 4) l[r] = (l[r] * 2).round() / 2;  // ties
  for (int64_t r = 1; r < rows; r += 4) l[r] *= 0.05;                   // nearly flat
  for (int64_t r = 2; r < rows; r += 8) l[r][r % vocab] += 40;          // one token holds the mass
  return l.contiguous();
}

}  // namespace

TEST(BatchSampler, EveryRowDrawsWhatTheSamplerDraws) {
  const int64_t S = 512, V = 700;
  const auto logits = test_logits(S, V);
  const std::vector<double> temps = {0.0, 0.4, 1.0, 1.7}, top_ps = {1.0, 0.95, 0.5, 0.05};
  Rng rng(5);
  BatchDraw draw;
  for (int64_t s = 0; s < S; ++s) {
    draw.temperature.push_back(temps[s % 4]);
    draw.top_p.push_back(top_ps[(s / 4) % 4]);
    draw.u.push_back(rng.uniform());
  }
  const auto got = sample_tokens(logits, draw);
  ASSERT_EQ(static_cast<int64_t>(got.size()), S);
  int64_t differ = 0;
  for (int64_t s = 0; s < S; ++s) {
    const int32_t want =
        sample_token(logits[s].data_ptr<float>(), V, draw.temperature[s], draw.top_p[s], draw.u[s]);
    if (got[s] != want) {
      ++differ;
      ADD_FAILURE() << "row " << s << " (t " << draw.temperature[s] << ", top_p " << draw.top_p[s] << ", u "
                    << draw.u[s] << "): batched " << got[s] << ", sampler " << want;
    }
  }
  EXPECT_EQ(differ, 0);
}

// The draws follow the nucleus: at u = 0 the lowest id of the nucleus, at u just below 1 the highest.
TEST(BatchSampler, ExtremeUniformsTakeTheNucleusEnds) {
  const auto logits = torch::tensor({1.0f, 3.0f, 0.0f, 3.0f, 2.0f}).view({1, 5});
  for (double top_p : {1.0, 0.6, 0.3}) {
    BatchDraw lo{{1.0}, {top_p}, {0.0}}, hi{{1.0}, {top_p}, {1.0 - 1e-12}};
    const Nucleus n = top_p_nucleus(logits.data_ptr<float>(), 5, 1.0, top_p);
    const auto [mn, mx] = std::minmax_element(n.ids.begin(), n.ids.end());
    EXPECT_EQ(sample_tokens(logits, lo)[0], *mn) << "top_p " << top_p;
    EXPECT_EQ(sample_tokens(logits, hi)[0], *mx) << "top_p " << top_p;
  }
}

TEST(BatchSampler, AllGreedyRowsAreArgmaxes) {
  const auto logits = test_logits(64, 300);
  const BatchDraw greedy{std::vector<double>(64, 0.0), std::vector<double>(64, 0.9),
                         std::vector<double>(64, 0.5)};
  const auto got = sample_tokens(logits, greedy);
  for (int64_t s = 0; s < 64; ++s)
    EXPECT_EQ(got[s], argmax_token(logits[s].data_ptr<float>(), 300)) << "row " << s;
}

TEST(BatchSampler, RejectsMismatchedRowsAndBadUniforms) {
  const auto logits = torch::zeros({2, 4});
  EXPECT_THROW(sample_tokens(logits, BatchDraw{{1.0}, {1.0}, {0.5}}), Error);
  EXPECT_THROW(sample_tokens(logits, BatchDraw{{1.0, 1.0}, {1.0, 1.0}, {0.5, 1.0}}), Error);
  EXPECT_NO_THROW(sample_tokens(logits, BatchDraw{{0.0, 1.0}, {1.0, 1.0}, {7.0, 0.5}}));  // greedy ignores u
}
