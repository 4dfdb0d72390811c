#include "ctm/core/signal.hpp"

#include <atomic>
#include <csignal>

namespace ctm {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int sig) {
  if (sig == SIGINT && g_stop.load()) {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
  g_stop.store(true);
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  // mpirun turns a SIGTERM into an abort of the job (exit 1, ranks killed a second later) but forwards
  // SIGUSR1 to every rank, so SIGUSR1 is the signal that stops an mpirun job cleanly (also Slurm's usual
  // --signal=USR1@... for jobs that requeue themselves).
  std::signal(SIGUSR1, on_stop_signal);
}

bool stop_requested() {
  return g_stop.load(std::memory_order_relaxed);
}
void request_stop() {
  g_stop.store(true);
}
void clear_stop_request() {
  g_stop.store(false);
}

}  // namespace ctm
