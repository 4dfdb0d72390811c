// Length-grouped batches, padding with the shifted loss mask, and the summed NLL against a direct
// computation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "ctm/core/error.hpp"
#include "ctm/train/batching.hpp"

namespace ctm::train {
namespace {

TEST(Batching, LengthGroupedCoversEveryExampleOnceAndIsDeterministic) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 103; ++i) lengths.push_back((i * 37) % 91 + 1);
  const auto a = length_grouped_batches(lengths, 4, 5, 7, 0);
  const auto b = length_grouped_batches(lengths, 4, 5, 7, 0);
  const auto other_epoch = length_grouped_batches(lengths, 4, 5, 7, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other_epoch);
  std::multiset<int64_t> seen;
  for (const auto& batch : a) {
    EXPECT_LE(batch.size(), 4u);
    for (auto i : batch) seen.insert(i);
    for (size_t k = 1; k < batch.size(); ++k) EXPECT_GE(lengths[batch[k - 1]], lengths[batch[k]]);
  }
  EXPECT_EQ(seen.size(), lengths.size());
  for (int64_t i = 0; i < 103; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
  EXPECT_EQ(a.size(), 26u);  // mega-batches of 20: 5 full ones (5 batches each) + 3 left -> 1 batch

  // Grouping by length reduces padding against a plain shuffle.
  auto padding = [&](const std::vector<std::vector<int64_t>>& batches) {
    int64_t pad = 0;
    for (const auto& batch : batches) {
      int64_t mx = 0;
      for (auto i : batch) mx = std::max(mx, lengths[i]);
      for (auto i : batch) pad += mx - lengths[i];
    }
    return pad;
  };
  EXPECT_LT(padding(a), padding(length_grouped_batches(lengths, 4, 1, 7, 0)));
}

TEST(Batching, SortedBatchesLongestFirst) {
  const auto batches = sorted_batches({3, 9, 1, 9, 5}, 2);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(batches[1], (std::vector<int64_t>{4, 0}));
  EXPECT_EQ(batches[2], (std::vector<int64_t>{2}));
}

TEST(Batching, CollateShiftsTargetsAndPads) {
  LmExample a{{5, 6, 7, 8}, {0, 0, 1, 1}};
  LmExample b{{9, 10}, {0, 1}};
  const auto batch = collate_lm({&a, &b}, /*pad_id=*/0);
  ASSERT_EQ(batch.ids_BT.sizes(), (torch::IntArrayRef{2, 4}));
  EXPECT_TRUE(
      torch::equal(batch.ids_BT, torch::tensor({5, 6, 7, 8, 9, 10, 0, 0}, torch::kInt64).view({2, 4})));
  // position t predicts token t+1 when that token is a target
  EXPECT_TRUE(torch::equal(
      batch.targets_BT, torch::tensor({-100, 7, 8, -100, 10, -100, -100, -100}, torch::kInt64).view({2, 4})));
  EXPECT_TRUE(torch::equal(batch.positions_BT[1], torch::arange(4, torch::kInt64)));
  EXPECT_EQ(batch.num_targets, 3);
  EXPECT_EQ(batch.lengths, (std::vector<int64_t>{4, 2}));
  LmExample bad{{1, 2}, {1}};
  EXPECT_THROW(collate_lm({&bad}, 0), ctm::Error);
}

TEST(Batching, SummedNllMatchesLogSoftmaxByHand) {
  torch::manual_seed(1);
  auto logits = torch::randn({5, 7}, torch::kFloat32);
  auto targets = torch::tensor({3, -100, 0, 6, -100}, torch::kInt64);
  const double got = summed_nll(logits, targets).item<double>();
  double want = 0.0;
  auto l = logits.to(torch::kFloat64);
  for (int n = 0; n < 5; ++n) {
    const int64_t y = targets[n].item<int64_t>();
    if (y == -100) continue;
    double mx = l[n].max().item<double>(), z = 0.0;
    for (int v = 0; v < 7; ++v) z += std::exp(l[n][v].item<double>() - mx);
    want += -(l[n][y].item<double>() - mx - std::log(z));
  }
  EXPECT_NEAR(got, want, 1e-5 * std::abs(want)) << "got " << got << " want " << want;
}

}  // namespace
}  // namespace ctm::train
