#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <thread>
#include <vector>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/openblas_kernels.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/core/worker_pool.hpp"

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

// ---- worker pool -----------------------------------------------------------------------------------------

TEST(WorkerPool, RunsEveryTaskExactlyOnce) {
  for (int workers : {1, 2, 3, 4}) {
    ctm::set_cpu_workers(workers);
    EXPECT_EQ(ctm::cpu_workers(), workers);
    for (int rep = 0; rep < 300; ++rep) {
      const int64_t tasks = rep % 17;
      std::vector<std::atomic<int>> hits(tasks);
      ctm::parallel_tasks(tasks, [&](int64_t i) { hits[i].fetch_add(1); });
      for (int64_t i = 0; i < tasks; ++i) ASSERT_EQ(hits[i].load(), 1) << workers << " workers, task " << i;
    }
  }
  ctm::set_cpu_workers(1);
}

TEST(WorkerPool, RangesCoverTheIndexSpace) {
  ctm::set_cpu_workers(3);
  for (int64_t n : {0, 1, 5, 64, 1001}) {
    std::vector<int> seen(n, 0);
    std::atomic<int> parts{0};
    ctm::parallel_ranges(n, 4, [&](int64_t b, int64_t e) {
      parts.fetch_add(1);
      for (int64_t i = b; i < e; ++i) ++seen[i];
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1) << "n " << n << " index " << i;
    EXPECT_LE(parts.load(), std::max<int64_t>(1, std::min<int64_t>(3, n / 4)));
  }
  ctm::set_cpu_workers(1);
}

TEST(WorkerPool, NestedJobsRunOnTheCallingTask) {
  ctm::set_cpu_workers(2);
  std::atomic<int> inner{0};
  ctm::parallel_tasks(4, [&](int64_t) { ctm::parallel_tasks(5, [&](int64_t) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 20);
  ctm::set_cpu_workers(1);
}

TEST(WorkerPool, ResizesWhileIdleAndAfterSleeping) {
  for (int round = 0; round < 20; ++round) {
    ctm::set_cpu_workers(1 + round % 3);  // resized before its workers have even started, often
    if (round % 7 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(30));  // workers fall asleep
    std::atomic<int> sum{0};
    ctm::parallel_tasks(10, [&](int64_t i) { sum.fetch_add(static_cast<int>(i)); });
    ASSERT_EQ(sum.load(), 45);
  }
  ctm::set_cpu_workers(1);
}

TEST(WorkerPool, ChoosesTheCallerAloneWhenTheWorkersAreSlower) {
  using ctm::detail::PoolModeChooser;
  // Feeds windows of jobs: `workers` seconds a job on the workers, `solo` seconds alone; returns the mode
  // chosen for the stretch after the two probes and its length.
  auto decide = [](double workers, double solo) {
    PoolModeChooser c;
    for (int64_t i = 0; i < PoolModeChooser::kProbeJobs; ++i) {
      EXPECT_FALSE(c.solo());
      c.finished(workers);
    }
    for (int64_t i = 0; i < PoolModeChooser::kProbeJobs; ++i) {
      EXPECT_TRUE(c.solo());
      c.finished(solo);
    }
    const bool chosen = c.solo();
    int64_t stretch = 0;
    while (c.solo() == chosen && stretch < 100000) {
      c.finished(chosen ? solo : workers);
      ++stretch;
    }
    return std::make_pair(chosen, stretch);
  };
  // Oversubscribed: the caller alone is faster, for a stretch; then the workers are probed again.
  EXPECT_EQ(decide(2e-4, 1e-4), std::make_pair(true, PoolModeChooser::kRunJobs));
  // Quiet: the workers win clearly and keep a long stretch (then the next probe of the workers); only a close
  // call gets a short one.
  EXPECT_EQ(decide(1e-4, 1.9e-4),
            std::make_pair(false, PoolModeChooser::kLongRunJobs + PoolModeChooser::kProbeJobs));
  EXPECT_EQ(decide(1e-4, 0.9e-4),
            std::make_pair(false, PoolModeChooser::kRunJobs + PoolModeChooser::kProbeJobs));
}

// Only OpenBLAS's fallback for unknown CPUs is replaced, and only by kernels the CPU can run.
TEST(OpenblasKernels, ReplacesOnlyTheFallback) {
  EXPECT_EQ(ctm::better_openblas_core("Prescott", true, true), "SkylakeX");
  EXPECT_EQ(ctm::better_openblas_core("prescott", true, false), "Haswell");
  EXPECT_EQ(ctm::better_openblas_core("Prescott", false, false), "");
  EXPECT_EQ(ctm::better_openblas_core("Haswell", true, true), "");
  EXPECT_EQ(ctm::better_openblas_core("SapphireRapids", true, true), "");
  EXPECT_EQ(ctm::better_openblas_core("", true, true), "");
}
