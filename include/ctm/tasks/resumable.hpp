// Resumable item-by-item work, the one mechanism behind every long task that walks items (questions, prompt
// lines, DPO pairs, trajectories). Each rank appends every item it finishes to its own journal in
// "<output>.parts/" (ctm/io/journal.hpp: settings in the header, one flushed line per item), so a SIGTERM, a
// crash or kill -9 loses at most the items in flight. A rerun, with any rank count, recovers every valid
// record of every journal (damaged lines are reported and skipped, later valid lines kept), works only on the
// rest, and at the end the task reads all records in item order, writes its final output and removes the
// folder. A journal made with other settings is never mixed in or overwritten: that is an error naming the
// differences.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctm/io/journal.hpp"
#include "ctm/tasks/task.hpp"

namespace ctm::tasks {

class ResumableWork {
 public:
  // "" when a recovered record is valid for item (e.g. it is about the same question), else why it is not.
  using CheckFn = std::function<std::string(int64_t item, const Json& data)>;

  // output: the final file the work ends in; items: how many this run needs (0 .. items-1).
  ResumableWork(const TaskContext& ctx, std::string output, Json settings, int64_t items, CheckFn check = {});
  ~ResumableWork();

  // Collective. Reads the journals of earlier runs (and, on rank 0, `previous`: records of a complete earlier
  // output by item, null where absent), compacts the valid records into one file and opens this rank's
  // journal.
  void recover(const std::vector<Json>& previous = {});

  int64_t items() const { return items_; }
  int64_t done_count() const;
  bool done(int64_t item) const { return done_[item]; }
  std::vector<int64_t> pending() const;  // items not done, increasing

  // Records an item this rank finished (flushed before returning).
  void add(int64_t item, const Json& data);

  // The records of items [begin, end), read from the journals (any rank may call it). ctm::Error if one is
  // missing.
  std::vector<Json> collect(int64_t begin, int64_t end) const;
  std::vector<Json> collect_all() const { return collect(0, items_); }

  // Collective, after the final output is committed: removes the journal folder.
  void finish();

  // If a stop was requested on any rank and items are left (collective): throws ctm::Stopped saying how many
  // `unit`s are kept.
  void stop_if_requested(const std::string& unit);

  const std::string& folder() const { return folder_; }

 private:
  std::vector<std::string> journal_files() const;
  const TaskContext& ctx_;
  std::string output_, folder_;
  Json settings_;
  int64_t items_;
  CheckFn check_;
  std::vector<bool> done_;
  int64_t recovered_ = 0, added_ = 0;  // items done by earlier runs; items this rank finished now
  std::unique_ptr<JournalWriter> writer_;
};

// The stop message of a task that keeps nothing (short tasks: tokenize): ctm::Stopped saying so.
[[noreturn]] void stop_without_saving(const std::string& what);

}  // namespace ctm::tasks
