#include "ctm/core/worker_pool.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CTM_CPU_RELAX() _mm_pause()
#else
#define CTM_CPU_RELAX() std::this_thread::yield()
#endif

namespace ctm {
namespace {

thread_local bool t_inside_task = false;

// Waiting for a worker: pause, and give the core away now and then in case that worker is descheduled (more
// threads than cores).
inline void relax(int spin) {
  if (spin % 1024 == 1023)
    std::this_thread::yield();
  else
    CTM_CPU_RELAX();
}

class WorkerPool {
 public:
  ~WorkerPool() { stop_workers(); }

  int size() const { return static_cast<int>(threads_.size()) + 1; }

  void resize(int threads) {
    threads = std::max(1, threads);
    if (threads == size()) return;
    std::lock_guard<std::mutex> one_job(job_mutex_);
    stop_workers();
    // A worker starts from the generation current now, so it can neither miss a job nor a stop issued before
    // it first runs.
    const uint64_t now = generation_.load();
    for (int i = 1; i < threads; ++i) threads_.emplace_back([this, now] { work(now); });
  }

  void run(int64_t tasks, const std::function<void(int64_t)>& fn) {
    if (tasks <= 0) return;
    if (tasks == 1 || threads_.empty() || t_inside_task) {
      for (int64_t i = 0; i < tasks; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> one_job(job_mutex_);  // jobs from several caller threads queue up
    const auto start = Clock::now();
    if (mode_.solo()) {
      t_inside_task = true;
      for (int64_t i = 0; i < tasks; ++i) fn(i);
      t_inside_task = false;
      mode_.finished(std::chrono::duration<double>(Clock::now() - start).count());
      return;
    }
    fn_ = &fn;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    finished_.store(0, std::memory_order_relaxed);
    open_.store(true);
    publish();
    run_tasks();
    for (int spin = 0; finished_.load(std::memory_order_acquire) < tasks_; ++spin) relax(spin);
    // Close the job, then wait for every worker that entered it: only then may fn die and next_ be reset.
    // open_ and active_ are sequentially consistent: a worker that saw the job open is counted in active_.
    open_.store(false);
    for (int spin = 0; active_.load() != 0; ++spin) relax(spin);
    fn_ = nullptr;
    mode_.finished(std::chrono::duration<double>(Clock::now() - start).count());
  }

 private:
  using Clock = std::chrono::steady_clock;

  void publish() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
  }

  void stop_workers() {
    quit_.store(true);
    publish();
    for (auto& t : threads_) t.join();
    threads_.clear();
    quit_.store(false);
  }

  void run_tasks() {
    t_inside_task = true;
    int64_t done = 0;
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < tasks_; ++done) (*fn_)(i);
    t_inside_task = false;
    if (done) finished_.fetch_add(done, std::memory_order_acq_rel);
  }

  void work(uint64_t seen) {
    while (true) {
      // Spin a little (the next job of a decode step comes within microseconds), then sleep.
      for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin)
        CTM_CPU_RELAX();
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (quit_.load()) return;
      active_.fetch_add(1);
      if (open_.load()) run_tasks();
      active_.fetch_sub(1);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_, job_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> quit_{false}, open_{false};
  std::atomic<int> active_{0};
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t tasks_ = 0;
  std::atomic<int64_t> next_{0}, finished_{0};
  detail::PoolModeChooser mode_;  // guarded by job_mutex_
};

WorkerPool& pool() {
  static WorkerPool p;
  return p;
}

}  // namespace

namespace detail {

void PoolModeChooser::finished(double seconds) {
  window_ += seconds;
  if (++jobs_ < (phase_ == Phase::Run ? run_jobs_ : kProbeJobs)) return;
  jobs_ = 0;
  if (phase_ == Phase::ProbeWorkers) {
    workers_s_ = window_;
    phase_ = Phase::ProbeSolo;
  } else if (phase_ == Phase::ProbeSolo) {
    // Hysteresis: the caller alone must be clearly faster; long stretches when the workers clearly win.
    run_solo_ = window_ < 0.85 * workers_s_;
    run_jobs_ = !run_solo_ && window_ > 1.5 * workers_s_ ? kLongRunJobs : kRunJobs;
    phase_ = Phase::Run;
  } else {
    phase_ = Phase::ProbeWorkers;
  }
  window_ = 0;
}

}  // namespace detail

void set_cpu_workers(int threads) {
  pool().resize(threads);
}
int cpu_workers() {
  return pool().size();
}

void parallel_tasks(int64_t tasks, const std::function<void(int64_t)>& fn) {
  pool().run(tasks, fn);
}

void parallel_ranges(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t parts =
      std::max<int64_t>(1, std::min<int64_t>(cpu_workers(), n / std::max<int64_t>(1, grain)));
  parallel_tasks(parts, [&](int64_t p) { fn(n * p / parts, n * (p + 1) / parts); });
}

}  // namespace ctm
