#include "ctm/io/jsonl.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"

namespace ctm {

JsonlReader::JsonlReader(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  if (std::filesystem::is_directory(path_, ec))
    throw Error(str("cannot read '", path_, "': it is a folder, not a file"));
  in_.open(path_, std::ios::binary);
  if (!in_) throw Error(str("cannot read '", path_, "': ", std::strerror(errno)));
}

std::string JsonlReader::where() const {
  return str(path_, ":", line_);
}

void JsonlReader::fail(const std::string& what) const {
  throw Error(str(where(), ": ", what));
}

bool JsonlReader::next(Json& out) {
  while (std::getline(in_, buf_)) {
    ++line_;
    if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
    if (buf_.find_first_not_of(" \t") == std::string::npos) continue;
    out = parse_json(buf_, where());
    return true;
  }
  if (in_.bad()) throw Error(str("error while reading '", path_, "' after line ", line_));
  return false;
}

std::vector<Json> read_jsonl(const std::string& path, int64_t max_records) {
  std::vector<Json> records;
  JsonlReader reader(path);
  Json record;
  while ((max_records < 0 || static_cast<int64_t>(records.size()) < max_records) && reader.next(record))
    records.push_back(std::move(record));
  return records;
}

JsonlWriter::JsonlWriter(const std::string& path) : file_(std::make_unique<AtomicFile>(path)) {}
JsonlWriter::~JsonlWriter() = default;

void JsonlWriter::write(const Json& record) {
  file_->stream() << record.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
}

void JsonlWriter::commit() {
  file_->commit();
}

}  // namespace ctm
