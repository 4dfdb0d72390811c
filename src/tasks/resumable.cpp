#include "ctm/tasks/resumable.hpp"

#include <algorithm>
#include <filesystem>
#include <map>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"

namespace ctm::tasks {
namespace fs = std::filesystem;
namespace {

constexpr size_t kProblemsShown = 20;

void report_problems(const std::vector<std::string>& problems) {
  for (size_t i = 0; i < problems.size() && i < kProblemsShown; ++i)
    spdlog::warn("{}; that line is skipped (its item is done again)", problems[i]);
  if (problems.size() > kProblemsShown)
    spdlog::warn("... and {} more damaged lines", problems.size() - kProblemsShown);
}

}  // namespace

ResumableWork::ResumableWork(const TaskContext& ctx, std::string output, Json settings, int64_t items,
                             CheckFn check)
    : ctx_(ctx),
      output_(std::move(output)),
      folder_(output_ + ".parts"),
      settings_(std::move(settings)),
      items_(items),
      check_(std::move(check)),
      done_(static_cast<size_t>(items), false) {}

ResumableWork::~ResumableWork() = default;

std::vector<std::string> ResumableWork::journal_files() const {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder_, ec))
    if (e.path().extension() == ".jsonl") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());  // done.jsonl first, then rank-*.jsonl
  return files;
}

void ResumableWork::recover(const std::vector<Json>& previous) {
  const bool rank0 = ctx_.comm.rank() == 0;
  std::string done_flags;
  if (rank0) {
    check_output_dir(folder_);
    std::map<int64_t, Json> kept;
    std::vector<std::string> problems;
    auto consider = [&](int64_t item, Json& data, const std::string& where) {
      if (kept.count(item)) return;
      if (item < 0) return problems.push_back(str(where, ": item ", item, " is negative"));
      if (item < items_ && check_) {
        const std::string why = check_(item, data);
        if (!why.empty()) return problems.push_back(str(where, ": item ", item, ": ", why));
      }
      kept.emplace(item, std::move(data));
    };
    const std::vector<std::string> files = journal_files();
    for (const std::string& file : files) {
      JournalContents j = read_journal(file);
      if (!j.has_header && j.records.empty()) {
        problems.insert(problems.end(), j.problems.begin(), j.problems.end());
        continue;
      }
      if (!j.has_header || j.settings != settings_)
        throw Error(str(file, ": progress of a run with other settings; remove '", folder_,
                        "' to start afresh, or use another --output_dir.",
                        j.has_header ? settings_differences(settings_, j.settings) : std::string()));
      problems.insert(problems.end(), j.problems.begin(), j.problems.end());
      for (auto& r : j.records) consider(r.item, r.data, str(file));
    }
    for (size_t i = 0; i < previous.size(); ++i)
      if (!previous[i].is_null()) {
        Json copy = previous[i];
        consider(static_cast<int64_t>(i), copy, output_);
      }
    report_problems(problems);
    // Compact: one file with every valid record, then drop the files it was made from.
    AtomicFile compact(folder_ + "/done.jsonl");
    compact.stream() << Json{{"ctm_journal", 1}, {"settings", settings_}}.dump(-1, ' ', false,
                                                                               Json::error_handler_t::replace)
                     << '\n';
    for (const auto& [item, data] : kept)
      compact.stream() << Json{{"item", item}, {"data", data}}.dump(-1, ' ', false,
                                                                    Json::error_handler_t::replace)
                       << '\n';
    compact.commit();
    for (const std::string& file : files)
      if (fs::path(file).filename() != "done.jsonl") fs::remove(file);
    done_flags.assign(static_cast<size_t>(items_), '0');
    for (const auto& kv : kept)
      if (kv.first < items_) done_flags[static_cast<size_t>(kv.first)] = '1';
  }
  done_flags = ctx_.comm.broadcast(done_flags);
  for (int64_t i = 0; i < items_; ++i) done_[i] = done_flags[static_cast<size_t>(i)] == '1';
  recovered_ = done_count();
  ctx_.comm.barrier();  // the compaction is complete before any rank starts its own journal
  writer_ = std::make_unique<JournalWriter>(str(folder_, "/rank-", ctx_.comm.rank(), ".jsonl"), settings_);
}

int64_t ResumableWork::done_count() const {
  return std::count(done_.begin(), done_.end(), true);
}

std::vector<int64_t> ResumableWork::pending() const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < items_; ++i)
    if (!done_[i]) out.push_back(i);
  return out;
}

void ResumableWork::add(int64_t item, const Json& data) {
  CTM_CHECK(writer_, "ResumableWork::add before recover()");
  writer_->append(item, data);
  if (!done_[item]) ++added_;
  done_[item] = true;
}

std::vector<Json> ResumableWork::collect(int64_t begin, int64_t end) const {
  std::vector<Json> out(static_cast<size_t>(std::max<int64_t>(0, end - begin)));
  std::vector<bool> have(out.size(), false);
  for (const std::string& file : journal_files()) {
    JournalContents j = read_journal(file);
    for (auto& r : j.records) {
      if (r.item < begin || r.item >= end || have[r.item - begin]) continue;
      have[r.item - begin] = true;
      out[r.item - begin] = std::move(r.data);
    }
  }
  for (size_t i = 0; i < out.size(); ++i)
    CTM_CHECK(have[i], folder_, ": no record of item ", begin + static_cast<int64_t>(i),
              " (was the folder changed during the run?)");
  return out;
}

void ResumableWork::finish() {
  writer_.reset();
  ctx_.comm.barrier();
  if (ctx_.comm.rank() == 0) {
    std::error_code ec;
    fs::remove_all(folder_, ec);
  }
}

void ResumableWork::stop_if_requested(const std::string& unit) {
  if (!ctx_.comm.any(stop_requested())) return;
  // Each rank knows the recovered items and its own new ones: sum the new ones over the ranks.
  int64_t added = added_;
  ctx_.comm.allreduce_sum(&added, 1);
  if (recovered_ + added == items_) return;  // the stop came after the last item: finish normally
  throw Stopped{str(recovered_ + added, " of ", items_, " ", unit, " are saved in ", folder_,
                    "; rerun the same command to resume")};
}

[[noreturn]] void stop_without_saving(const std::string& what) {
  throw Stopped{str("nothing of ", what, " was kept; rerun the same command to start again")};
}

}  // namespace ctm::tasks
