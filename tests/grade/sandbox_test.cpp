// The symbolic stage cannot hang or crash the caller: the forked child is killed at the deadline, a crash or
// an exception in it is a "not equal", and the graders return within ~1 s on pathological expressions.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>
#include <vector>

#include "ctm/grade/grader.hpp"
#include "ctm/grade/sandbox.hpp"

namespace {

using namespace ctm::grade;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

TEST(Sandbox, VerdictsComeBack) {
  EXPECT_EQ(run_with_deadline([] { return true; }, std::chrono::milliseconds(1000)), SandboxOutcome::True);
  EXPECT_EQ(run_with_deadline([] { return false; }, std::chrono::milliseconds(1000)), SandboxOutcome::False);
}

TEST(Sandbox, ExceptionIsFalse) {
  auto outcome =
      run_with_deadline([]() -> bool { throw std::runtime_error("boom"); }, std::chrono::milliseconds(1000));
  EXPECT_EQ(outcome, SandboxOutcome::False);
}

TEST(Sandbox, InfiniteLoopIsKilledAtTheDeadline) {
  auto t0 = Clock::now();
  auto outcome = run_with_deadline(
      [] {
        volatile unsigned long spin = 0;
        while (true) spin = spin + 1;
        return true;
      },
      std::chrono::milliseconds(300));
  double took = seconds_since(t0);
  EXPECT_EQ(outcome, SandboxOutcome::Timeout);
  EXPECT_GE(took, 0.25);
  EXPECT_LT(took, 2.0);
}

TEST(Sandbox, CrashIsReported) {
  auto outcome = run_with_deadline(
      [] {
        std::raise(SIGKILL);
        return true;
      },
      std::chrono::milliseconds(1000));
  EXPECT_EQ(outcome, SandboxOutcome::Crashed);
}

TEST(Sandbox, ThreadsCanGradeConcurrently) {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      // distinct pairs so the cache does not answer
      std::string gold = "\\frac{" + std::to_string(t + 1) + "}{7}";
      std::string pred = "\\frac{" + std::to_string(2 * (t + 1)) + "}{14}+x-x";
      ok[t] = is_equiv(GraderKind::Math, Rules::MATH, pred, gold) ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(ok[t], 1) << "thread " << t;
}

// Expressions that make a CAS (or sympy) run for far longer than the limit: both graders say "not equal" and
// return within the 1 s deadline plus fork/reap slack.
TEST(SymbolicTimeout, PathologicalExpressionsReturnFalseInTime) {
  struct Row {
    GraderKind kind;
    const char* pred;
    const char* gold;
  };
  for (const Row& r : std::vector<Row>{
           {GraderKind::Paper, "(x+y+z+w+1)**60", "(w+x+y+z)**60"},
           {GraderKind::Math, "(x+y+z+w+1)^{70}", "(w+x+y+z+2)^{70}"},
           {GraderKind::Paper, "9**9**9**9", "1"},
           {GraderKind::Math, "10^{10^{10}}", "1"},
       }) {
    auto t0 = Clock::now();
    bool equal = is_equiv(r.kind, Rules::MATH, r.pred, r.gold);
    double took = seconds_since(t0);
    EXPECT_FALSE(equal) << grader_name(r.kind) << " " << r.pred << " vs " << r.gold;
    EXPECT_LT(took, 2.0) << grader_name(r.kind) << " " << r.pred << " vs " << r.gold << " took " << took
                         << " s";
  }
}

}  // namespace
