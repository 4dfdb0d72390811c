// Progress of a long loop: a bar redrawn in place on a terminal, plain periodic lines in a batch log.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ctm {

class Progress {
 public:
  // total: number of items (requests, questions, steps); interval_s: seconds between lines when not a
  // terminal.
  Progress(std::string label, int64_t total, bool enabled = true, double interval_s = 30.0);
  ~Progress();
  void advance(int64_t items, int64_t tokens = 0);  // items (and tokens) finished since the last call
  void finish();                                    // final line
  int64_t done() const { return done_; }

 private:
  void print(bool final_line);
  std::string label_;
  int64_t total_, done_ = 0, tokens_ = 0;
  bool enabled_, tty_, finished_ = false;
  double interval_s_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace ctm
