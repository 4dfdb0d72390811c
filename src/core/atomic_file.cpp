#include "ctm/core/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "ctm/core/error.hpp"

namespace ctm {
namespace fs = std::filesystem;
namespace {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "host";
  return buf;
}

// "<path>.tmp.<host>.<pid>": the host keeps runs on different nodes of a shared file system apart.
std::string temp_name(const std::string& path) {
  return str(path, ".tmp.", host_name(), ".", ::getpid());
}

// Temporaries that a killed run of this host left beside `path` (its process is gone) are removed.
void remove_stale_temps(const std::string& path) {
  const fs::path p(path);
  const std::string prefix = p.filename().string() + ".tmp." + host_name() + ".";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(p.parent_path().empty() ? "." : p.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
  }
}

const char* kind_of(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "a file";
  if (S_ISDIR(st.st_mode)) return "a folder";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

// Follows a chain of symlinks to the path it ends at (which need not exist).
std::string follow_links(const std::string& path) {
  fs::path p(path);
  for (int hops = 0; hops < 40; ++hops) {
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(p, ec))) return p.string();
    const fs::path target = fs::read_symlink(p, ec);
    if (ec) throw Error(str("cannot read the link '", p.string(), "': ", ec.message()));
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  throw Error(str("output '", path, "': too many levels of symbolic links"));
}

// A new file can be created in dir (the only reliable test: root passes access(2) on read-only mounts).
void probe_writable(const std::string& dir, const std::string& what) {
  const std::string probe = str(dir.empty() ? "." : dir, "/.ctm-probe.", host_name(), ".", ::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return;  // another thread of this process is probing
    throw Error(str("cannot write ", what, ": ", std::strerror(errno)));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

// Checks, creating nothing, that `dir` can hold a new entry: dir, or its nearest existing ancestor when the
// missing folders are still to be made, is a folder that accepts new files.
void probe_creatable(const std::string& dir, const std::string& what) {
  fs::path p = dir.empty() ? fs::path(".") : fs::path(dir);
  std::error_code ec;
  while (!fs::exists(p, ec) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  if (!fs::exists(p, ec)) p = ".";
  struct stat st;
  if (::stat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    throw Error(str("cannot write ", what, ": '", p.string(), "' is ", kind_of(st), ", not a folder"));
  probe_writable(p.string(), what);
}

}  // namespace

void make_dirs(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(str("cannot create folder '", dir, "': ", ec.message()));
}

std::string check_output_file(const std::string& path) {
  CTM_CHECK(!path.empty(), "empty output path");
  const std::string target = follow_links(path);
  struct stat st;
  if (::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(str("cannot write '", path, "': it exists and is ", kind_of(st),
                    " (ctm only replaces regular files)"));
  probe_creatable(fs::path(target).parent_path().string(),
                  str("'", path, "' (its folder does not accept new files)"));
  return target;
}

void check_output_dir(const std::string& dir) {
  CTM_CHECK(!dir.empty(), "empty output folder");
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    throw Error(str("cannot write into '", dir, "': it exists and is ", kind_of(st), ", not a folder"));
  make_dirs(dir);
  probe_writable(dir, str("into '", dir, "'"));
}

AtomicFile::AtomicFile(std::string path) : path_(check_output_file(path)) {
  make_dirs(fs::path(path_).parent_path().string());
  remove_stale_temps(path_);
  tmp_ = temp_name(path_);
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
  const bool written = static_cast<bool>(out_);
  out_.close();
  if (!written || !out_)
    throw Error(str("cannot write '", path_, "': writing '", tmp_, "' failed (disk full or quota?)"));
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error(str("cannot rename '", tmp_, "' to '", path_, "': ", std::strerror(errno)));
  committed_ = true;
}

void commit_together(AtomicFile& data, AtomicFile& descriptor) {
  std::error_code ec;
  fs::remove(descriptor.path(), ec);
  data.commit();
  descriptor.commit();
}

void check_output_folder(const std::string& dir) {
  const std::string target = follow_links(dir);
  struct stat st;
  if (::stat(target.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    throw Error(str("cannot write the folder '", dir, "': it exists and is ", kind_of(st)));
  probe_creatable(fs::path(target).parent_path().string(),
                  str("the folder '", dir, "' (its parent does not accept new entries)"));
}

AtomicDir::AtomicDir(std::string dir) : dir_(follow_links(dir)) {
  struct stat st;
  if (::stat(dir_.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    throw Error(str("cannot write the folder '", dir, "': it exists and is ", kind_of(st)));
  make_dirs(fs::path(dir_).parent_path().string());
  remove_stale_temps(dir_);
  tmp_ = temp_name(dir_);
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec) || ec)
    throw Error(str("cannot create the folder '", tmp_, "': ", ec ? ec.message() : "exists"));
}

AtomicDir::~AtomicDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void AtomicDir::commit() {
  std::error_code ec;
  if (fs::exists(dir_, ec)) {
    // Swap in one step, then drop the old folder (now under the temporary name). File systems without
    // RENAME_EXCHANGE get two renames: the old folder moves aside first, so there is still never a mix.
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, dir_.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        throw Error(str("cannot replace the folder '", dir_, "' by '", tmp_, "': ", std::strerror(errno)));
      const std::string old = tmp_ + ".old";
      if (std::rename(dir_.c_str(), old.c_str()) != 0 || std::rename(tmp_.c_str(), dir_.c_str()) != 0)
        throw Error(str("cannot replace the folder '", dir_, "' by '", tmp_, "': ", std::strerror(errno)));
      committed_ = true;
      fs::remove_all(old, ec);
      return;
    }
    committed_ = true;
    fs::remove_all(tmp_, ec);
    return;
  }
  if (std::rename(tmp_.c_str(), dir_.c_str()) != 0)
    throw Error(str("cannot rename '", tmp_, "' to '", dir_, "': ", std::strerror(errno)));
  committed_ = true;
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFile f(path);
  f.stream().write(data.data(), static_cast<std::streamsize>(data.size()));
  f.commit();
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(str("cannot read '", path, "': it is a folder, not a file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str("cannot read '", path, "': ", std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(str("error while reading '", path, "'"));
  return ss.str();
}

std::string file_fingerprint(const std::string& path) {
  const std::string data = read_file(path);
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : data) h = (h ^ c) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

}  // namespace ctm
