// JSON Lines: one JSON value per line. Errors name the file and the 1-based line.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "ctm/io/json.hpp"

namespace ctm {

class AtomicFile;

class JsonlReader {
 public:
  explicit JsonlReader(std::string path);
  // Reads the next non-blank line into out; false at the end of the file.
  bool next(Json& out);
  int64_t line() const { return line_; }  // line number of the record last returned
  const std::string& path() const { return path_; }
  std::string where() const;                              // "path:line"
  [[noreturn]] void fail(const std::string& what) const;  // throws Error("path:line: what")

 private:
  std::string path_;
  std::ifstream in_;
  int64_t line_ = 0;
  std::string buf_;
};

// All records (or the first max_records when >= 0).
std::vector<Json> read_jsonl(const std::string& path, int64_t max_records = -1);

// Writes records to a temporary file; commit() renames it into place.
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();
  void write(const Json& record);
  void commit();

 private:
  std::unique_ptr<AtomicFile> file_;
};

}  // namespace ctm
