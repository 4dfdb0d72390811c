#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"

namespace fs = std::filesystem;

TEST(Rng, MixSeedSeparatesNeighbours) {
  std::set<uint64_t> seen;
  for (uint64_t item = 0; item < 100; ++item)
    for (uint64_t sample = 0; sample < 100; ++sample) seen.insert(ctm::mix_seed(42, item, sample));
  EXPECT_EQ(seen.size(), 10000u);
  EXPECT_NE(ctm::mix_seed(1, 2, 3), ctm::mix_seed(1, 3, 2));
  EXPECT_EQ(ctm::mix_seed(7, 8, 9), ctm::mix_seed(7, 8, 9));
}

TEST(Rng, UniformMomentsAndRange) {
  ctm::Rng rng(123);
  double sum = 0, sum2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum2 += u * u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sum2 / n - (sum / n) * (sum / n), 1.0 / 12, 0.002);
}

TEST(Rng, BelowIsUnbiased) {
  ctm::Rng rng(5);
  std::vector<int> counts(7, 0);
  const int n = 70000;
  for (int i = 0; i < n; ++i) counts[rng.below(7)]++;
  for (int c : counts) EXPECT_NEAR(c, n / 7, 5 * std::sqrt(n / 7.0));
}

TEST(Rng, StateRoundTripContinuesTheStream) {
  ctm::Rng a(99);
  for (int i = 0; i < 10; ++i) a.next_u64();
  ctm::Rng b(0);
  b.set_state(a.state());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_THROW(b.set_state({1, 2}), ctm::Error);
}

TEST(Rng, ShuffleIsAPermutationAndSeeded) {
  std::vector<int> v(50), w;
  for (int i = 0; i < 50; ++i) v[i] = i;
  w = v;
  ctm::Rng r1(3), r2(3);
  r1.shuffle(v);
  r2.shuffle(w);
  EXPECT_EQ(v, w);
  std::set<int> s(v.begin(), v.end());
  EXPECT_EQ(s.size(), 50u);
}

TEST(AtomicFile, CommitRenamesAndAbandonLeavesNothing) {
  const fs::path dir = fs::path(testing::TempDir()) / "ctm_atomic";
  fs::remove_all(dir);
  const std::string target = (dir / "sub" / "out.txt").string();
  {
    ctm::AtomicFile f(target);
    f.stream() << "partial";
    EXPECT_FALSE(fs::exists(target));
    EXPECT_TRUE(fs::exists(f.tmp_path()));
  }  // abandoned
  EXPECT_FALSE(fs::exists(target));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator()), 0);
  ctm::write_file_atomic(target, "hello\n");
  EXPECT_EQ(ctm::read_file(target), "hello\n");
  EXPECT_THROW(ctm::read_file((dir / "missing").string()), ctm::Error);
  try {
    ctm::read_file((dir / "missing").string());
  } catch (const ctm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
}
