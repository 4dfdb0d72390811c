// Outputs are written to a temporary name beside the target and renamed into place only when complete, so a
// crash or a SIGTERM never leaves a half-written file under the final name.
#pragma once

#include <fstream>
#include <string>
#include <string_view>

namespace ctm {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates parent folders
  ~AtomicFile();                          // removes the temporary file unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::ostream& stream() { return out_; }
  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }
  void commit();  // flush, fsync-free close, rename over the target

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view data);
std::string read_file(const std::string& path);  // whole file; ctm::Error naming the path if unreadable
bool file_exists(const std::string& path);
void make_dirs(const std::string& dir);  // mkdir -p; ctm::Error on failure

}  // namespace ctm
