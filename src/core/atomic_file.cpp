#include "ctm/core/atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "ctm/core/error.hpp"

namespace ctm {
namespace fs = std::filesystem;

void make_dirs(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(str("cannot create folder '", dir, "': ", ec.message()));
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  make_dirs(fs::path(path_).parent_path().string());
  tmp_ = str(path_, ".tmp.", ::getpid());
  out_.open(tmp_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error(str("cannot write '", tmp_, "': ", std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    out_.close();
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::commit() {
  out_.flush();
  if (!out_) throw Error(str("write to '", tmp_, "' failed (disk full?)"));
  out_.close();
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error(str("cannot rename '", tmp_, "' to '", path_, "': ", std::strerror(errno)));
  committed_ = true;
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFile f(path);
  f.stream().write(data.data(), static_cast<std::streamsize>(data.size()));
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str("cannot read '", path, "': ", std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(str("error while reading '", path, "'"));
  return ss.str();
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

}  // namespace ctm
