// The adaptive critical-token search against the rule on every position (data::critical_position): equal on
// every random sequence where no G follows a Z, and on the others different only in the cases the header
// lists, which the test checks from what the oracle was asked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "ctm/core/rng.hpp"
#include "ctm/data/critical.hpp"
#include "ctm/data/critical_search.hpp"

namespace ctm::data {
namespace {

using C = SuccessClass;

int64_t below(Rng& rng, int64_t n) {
  return static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));
}

// Per-position counts of 64 rollouts with the given classes (a random count within the class).
struct Trajectory {
  std::vector<int16_t> correct, total;
};

Trajectory counts_of(const std::vector<C>& classes, Rng& rng) {
  Trajectory t;
  for (C c : classes) {
    const int64_t v = c == C::Z ? 0 : c == C::M ? 1 + below(rng, 3) : 4 + below(rng, 61);
    t.correct.push_back(static_cast<int16_t>(v));
    t.total.push_back(64);
  }
  return t;
}

// An oracle over counts that records what it was asked, failing the test on a repeated or unsorted ask.
struct Oracle {
  const Trajectory* t;
  std::vector<int64_t> asked;
  int64_t calls = 0;
  std::vector<C> operator()(const std::vector<int64_t>& positions) {
    ++calls;
    std::vector<C> out;
    for (int64_t p : positions) {
      EXPECT_EQ(std::find(asked.begin(), asked.end(), p), asked.end()) << "position " << p << " asked twice";
      EXPECT_TRUE(out.empty() || p > positions[out.size() - 1]) << "positions not ascending";
      asked.push_back(p);
      out.push_back(success_class(t->correct[static_cast<size_t>(p)]));
    }
    return out;
  }
};

struct Outcome {
  int32_t adaptive = -1, exhaustive = -1;
  std::vector<int64_t> asked;
  int64_t calls = 0;
};

// The search over the whole sequence (the array index is the position).
Outcome search(const std::vector<C>& classes, int64_t window, Rng& rng) {
  const Trajectory t = counts_of(classes, rng);
  Oracle oracle{&t, {}};
  const auto n = static_cast<int64_t>(classes.size());
  const std::optional<int32_t> r =
      adaptive_critical_position(0, n - 1, window, [&](const std::vector<int64_t>& p) { return oracle(p); });
  EXPECT_TRUE(r.has_value());
  return {r.value_or(-2), critical_position(t.correct, t.total), oracle.asked, oracle.calls};
}

// Classes in which no G follows a Z: G or M before a random split, M or Z from it on, each run of random
// density.
std::vector<C> monotone(Rng& rng) {
  const int64_t n = 1 + below(rng, 120);
  const int64_t split = below(rng, n + 1);
  const double m_before = rng.uniform(), m_after = rng.uniform() * rng.uniform();
  std::vector<C> out;
  for (int64_t i = 0; i < n; ++i) {
    const bool m = rng.uniform() < (i < split ? m_before : m_after);
    out.push_back(m ? C::M : i < split ? C::G : C::Z);
  }
  return out;
}

// Any classes: a monotone sequence with a few positions set to random classes.
std::vector<C> perturbed(Rng& rng) {
  std::vector<C> out = monotone(rng);
  const int64_t flips = 1 + below(rng, 4);
  for (int64_t f = 0; f < flips; ++f)
    out[static_cast<size_t>(below(rng, static_cast<int64_t>(out.size())))] = static_cast<C>(below(rng, 3));
  return out;
}

bool g_after_z(const std::vector<C>& c) {
  bool z = false;
  for (C x : c) {
    if (x == C::G && z) return true;
    z = z || x == C::Z;
  }
  return false;
}

// Which of the header's cases (a), (b), (c) explains a difference; "" when none does.
std::string explained(const std::vector<C>& c, const Outcome& o, int64_t window) {
  const auto n = static_cast<int64_t>(c.size());
  if (c.back() == C::G) return "a";
  int64_t lo = -1;  // the last G the search classified
  for (int64_t p : o.asked)
    if (c[static_cast<size_t>(p)] == C::G) lo = std::max(lo, p);
  bool z_after_lo = false;
  for (int64_t p : o.asked) z_after_lo = z_after_lo || (p > lo && c[static_cast<size_t>(p)] == C::Z);
  if (!z_after_lo) return "c";
  bool g = false;
  for (int64_t i = o.adaptive + window + 1; i < n; ++i) {
    if (c[static_cast<size_t>(i)] == C::Z && g) return "b";
    g = g || c[static_cast<size_t>(i)] == C::G;
  }
  return "";
}

std::string text(const std::vector<C>& c) {
  std::string s;
  for (C x : c) s += x == C::Z ? 'Z' : x == C::M ? 'M' : 'G';
  return s;
}

TEST(AdaptiveCriticalSearch, EqualsTheRuleWhenNoGFollowsAZ) {
  Rng rng(mix_seed(7, 1, 0));
  for (int trial = 0; trial < 20000; ++trial) {
    const std::vector<C> c = monotone(rng);
    const int64_t window = 1 + below(rng, 10);
    const Outcome o = search(c, window, rng);
    ASSERT_EQ(o.adaptive, o.exhaustive) << text(c) << " window " << window;
  }
}

TEST(AdaptiveCriticalSearch, ClassifiesFewPositionsOfAStepTrajectory) {
  // G...G Z...Z: both ends, the bisection, then lo + 1 .. lo + 1 + window in two oracle calls.
  Rng rng(mix_seed(7, 2, 0));
  for (int64_t n : {1, 2, 5, 64, 100, 1000})
    for (int64_t step = 0; step <= n; step += std::max<int64_t>(1, n / 7)) {
      std::vector<C> c(static_cast<size_t>(n), C::Z);
      std::fill(c.begin(), c.begin() + step, C::G);
      const Outcome o = search(c, 8, rng);
      EXPECT_EQ(o.adaptive, step < n ? step : -1) << "n " << n << " step " << step;
      const auto bound = static_cast<size_t>(2 + std::ceil(std::log2(n + 1.0)) + 8 + 1);
      EXPECT_LE(o.asked.size(), bound) << "n " << n << " step " << step;
    }
}

TEST(AdaptiveCriticalSearch, HandMadeCases) {
  Rng rng(mix_seed(7, 3, 0));
  // A zig-zag within the confirmation window: the later Z after the last G.
  EXPECT_EQ(search({C::G, C::G, C::Z, C::M, C::G, C::M, C::Z, C::Z}, 4, rng).adaptive, 6);
  // M runs inside the Z run and the G run do not matter.
  EXPECT_EQ(search({C::G, C::M, C::G, C::M, C::M, C::Z, C::M, C::Z}, 2, rng).adaptive, 5);
  // Case (a): the last position is G; the rule returns the dropped candidate 1, the search -1.
  const Outcome a = search({C::M, C::Z, C::M, C::G}, 2, rng);
  EXPECT_EQ(a.exhaustive, 1);
  EXPECT_EQ(a.adaptive, -1);
  // Case (b): a G beyond the window, followed by a Z.
  const Outcome b = search({C::G, C::Z, C::Z, C::Z, C::Z, C::Z, C::G, C::Z}, 2, rng);
  EXPECT_EQ(b.exhaustive, 7);
  EXPECT_EQ(b.adaptive, 1);
  EXPECT_EQ(search({}, 3, rng).adaptive, -1);
}

TEST(AdaptiveCriticalSearch, OtherSequencesDifferOnlyInTheListedCases) {
  Rng rng(mix_seed(7, 4, 0));
  int64_t non_monotone = 0, differ = 0, asked = 0, positions = 0;
  std::map<std::string, int64_t> cases;
  for (int trial = 0; trial < 20000; ++trial) {
    const std::vector<C> c = perturbed(rng);
    const int64_t window = 1 + below(rng, 10);
    const Outcome o = search(c, window, rng);
    asked += static_cast<int64_t>(o.asked.size());
    positions += static_cast<int64_t>(c.size());
    if (!g_after_z(c)) {
      ASSERT_EQ(o.adaptive, o.exhaustive) << text(c) << " window " << window;
      continue;
    }
    ++non_monotone;
    if (o.adaptive == o.exhaustive) continue;
    ++differ;
    const std::string why = explained(c, o, window);
    ASSERT_NE(why, "") << text(c) << " window " << window << ": adaptive " << o.adaptive << ", rule "
                       << o.exhaustive;
    ++cases[why];
  }
  std::printf(
      "%lld of %lld sequences with a G after a Z differ (a: %lld, b: %lld, c: %lld); positions "
      "classified %.1f%%\n",
      static_cast<long long>(differ), static_cast<long long>(non_monotone),
      static_cast<long long>(cases["a"]), static_cast<long long>(cases["b"]),
      static_cast<long long>(cases["c"]), 100.0 * static_cast<double>(asked) / positions);
  EXPECT_GT(non_monotone, 1000);  // the generator does make such sequences
}

TEST(AdaptiveCriticalSearch, GivesUpWhenTheOracleDoes) {
  int64_t calls = 0;
  const auto oracle = [&](const std::vector<int64_t>& positions) {
    std::vector<C> out;
    if (++calls > 2) return out;  // the third call gives up (the bisection's second probe)
    for (int64_t p : positions) out.push_back(p == 99 ? C::Z : C::G);
    return out;
  };
  EXPECT_FALSE(adaptive_critical_position(0, 99, 4, oracle).has_value());
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace ctm::data
