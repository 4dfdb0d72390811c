// A journal of finished work items: the file behind every resumable task. Its first line holds the settings
// that produced the work ({"ctm_journal": 1, "settings": {...}}), and every further line one finished item
// ({"item": i, "data": {...}}), appended and flushed as soon as the item is done. Settings and data live in
// the same file, so they can never disagree; a kill -9 loses at most the line being written (a torn last
// line), and a damaged line in the middle costs that line only: reading keeps every valid line and reports
// the others.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "ctm/io/json.hpp"

namespace ctm {

struct JournalRecord {
  int64_t item = 0;
  Json data;
};

struct JournalContents {
  bool has_header = false;  // false: empty file or a first line that is not a journal header
  Json settings;
  std::vector<JournalRecord> records;  // the valid lines, in file order
  std::vector<std::string> problems;   // "file:line: what" for every line that was skipped
};

// Reads a journal. Damaged lines are skipped and listed in problems (never an exception); ctm::Error only
// when the file cannot be read at all.
JournalContents read_journal(const std::string& path);

class JournalWriter {
 public:
  // Creates (or truncates) path and writes the header line.
  JournalWriter(std::string path, const Json& settings);
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;
  // One line, handed to the operating system before returning (it survives kill -9 of this process); a failed
  // write (disk full) is a ctm::Error naming the file.
  void append(int64_t item, const Json& data);
  const std::string& path() const { return path_; }

 private:
  void write_line(const std::string& line);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// The top-level keys whose values differ between two settings objects, as "key: a vs b" lines (for errors).
std::string settings_differences(const Json& mine, const Json& theirs);

}  // namespace ctm
