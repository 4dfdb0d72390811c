// Helpers of the fuzz targets.
//  - require(): a broken invariant is a finding: print it and abort, so libFuzzer saves the input.
//  - MemFile: the input as an anonymous in-memory file (memfd), opened through /proc/self/fd/<n>. It is a
//    regular file (mmap and fstat work), never touches the disk and leaves nothing behind after a crash.
//  - ScratchDir: one folder per process under /dev/shm (or $TMPDIR) for code that needs real names beside
//    each other (tokenizer.json + tokenizer_config.json); removed when the process exits normally.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace ctm::fuzz {

inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz: %s\n", what);
    std::abort();
  }
}

inline void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n <= 0) {
      std::perror("fuzz: write");
      std::abort();
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

class MemFile {
 public:
  explicit MemFile(std::string_view bytes) : fd_(::memfd_create("ctm-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("fuzz: memfd_create");
      std::abort();
    }
    write_all(fd_, bytes);
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

class ScratchDir {
 public:
  ScratchDir() {
    namespace fs = std::filesystem;
    const char* tmp = std::getenv("TMPDIR");
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::path(tmp ? tmp : "/tmp");
    std::string templ = (base / "ctm-fuzz-XXXXXX").string();
    if (!::mkdtemp(templ.data())) {
      std::perror("fuzz: mkdtemp");
      std::abort();
    }
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

  // Writes (or replaces) a file in the folder and returns its path.
  std::string write(const std::string& name, std::string_view bytes) const {
    const std::string p = path_ + "/" + name;
    std::FILE* f = std::fopen(p.c_str(), "wb");
    if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
      std::perror("fuzz: write scratch file");
      std::abort();
    }
    return p;
  }
  void remove(const std::string& name) const { std::remove((path_ + "/" + name).c_str()); }

 private:
  std::string path_;
};

}  // namespace ctm::fuzz
