#include "ctm/core/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace ctm {
namespace {

std::string format_seconds(double s) {
  if (s < 0 || s > 1e8) return "?";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

}  // namespace

Progress::Progress(std::string label, int64_t total, bool enabled, double interval_s)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) != 0),
      interval_s_(interval_s),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  if (enabled_ && !finished_ && tty_) std::fputc('\n', stderr);
}

void Progress::advance(int64_t items, int64_t tokens) {
  done_ += items;
  tokens_ += tokens;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (since >= (tty_ ? 0.2 : interval_s_)) {
    last_print_ = now;
    print(false);
  }
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  print(true);
}

void Progress::print(bool final_line) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? tokens_ / elapsed : 0.0;
  const double eta = done_ > 0 ? elapsed * (total_ - done_) / done_ : -1;
  const double frac = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  char line[256];
  if (tty_) {
    const int width = 30, fill = static_cast<int>(frac * width);
    std::string bar(fill, '#');
    bar.resize(width, '.');
    std::snprintf(line, sizeof line, "\r%s [%s] %lld/%lld  %.1f tok/s  elapsed %s  ETA %s%s", label_.c_str(),
                  bar.c_str(), (long long)done_, (long long)total_, rate, format_seconds(elapsed).c_str(),
                  format_seconds(final_line ? 0 : eta).c_str(), final_line ? "\n" : "");
  } else {
    std::snprintf(line, sizeof line, "%s: %lld/%lld (%.1f%%)  %.1f tok/s  elapsed %s  ETA %s\n",
                  label_.c_str(), (long long)done_, (long long)total_, 100.0 * frac, rate,
                  format_seconds(elapsed).c_str(), format_seconds(final_line ? 0 : eta).c_str());
  }
  std::fputs(line, stderr);
  std::fflush(stderr);
}

}  // namespace ctm
