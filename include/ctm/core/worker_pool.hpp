// The process's CPU workers for ctm's own kernels (small-batch matrix products, sampling, decode attention).
// libtorch runs with one intra-op thread (OpenBLAS has its own), so without this pool every ctm kernel would
// run on one core. Workers spin briefly between jobs (decode issues ~100 jobs a step) and then sleep, so an
// idle pool costs nothing.
#pragma once

#include <cstdint>
#include <functional>

namespace ctm {

// Sets how many threads run ctm's kernels (the caller included); 1 runs everything on the caller. Call it
// before the first job, e.g. with the cores a rank owns.
void set_cpu_workers(int threads);
int cpu_workers();

// Runs fn(task) for every task in [0, tasks) on the workers and the calling thread, and returns when all are
// done. Tasks must be independent. A call made from inside a task runs its tasks on that thread.
void parallel_tasks(int64_t tasks, const std::function<void(int64_t)>& fn);

// Splits [0, n) into at most cpu_workers() contiguous ranges of at least `grain` items (the last may be
// shorter) and runs fn(begin, end) on each.
void parallel_ranges(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

namespace detail {

// How the pool runs a job: on the workers, or on the caller alone. With more runnable threads than cores (a
// shared node, other ranks) the process's threads end up taking turns on the cores they get, and splitting a
// job across the workers costs more than the caller doing it alone (the tiny model's decode ran at 0.4-0.6x
// of one thread on two loaded cores). So the pool times a window of jobs both ways now and then - the
// workers, then the caller alone, over the same kind of work - and runs the next stretch of jobs the faster
// way. Results never depend on which threads ran what.
class PoolModeChooser {
 public:
  static constexpr int64_t kProbeJobs = 256, kRunJobs = 4096, kLongRunJobs = 16384;
  bool solo() const { return phase_ == Phase::ProbeSolo || (phase_ == Phase::Run && run_solo_); }
  void finished(double seconds);  // a job took this long (wall clock)

 private:
  enum class Phase { ProbeWorkers, ProbeSolo, Run };
  Phase phase_ = Phase::ProbeWorkers;
  bool run_solo_ = false;
  int64_t jobs_ = 0, run_jobs_ = kRunJobs;
  double window_ = 0, workers_s_ = 0;
};

}  // namespace detail
}  // namespace ctm
