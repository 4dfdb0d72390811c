// Outputs are written to a temporary name beside the target and renamed into place only when complete, so a
// crash or a SIGTERM never leaves a half-written file under the final name. Output paths are checked before
// any work is done (check_output_file, check_output_dir), so a bad path fails in a second, not after hours.
#pragma once

#include <fstream>
#include <string>
#include <string_view>

namespace ctm {

// The file an output at `path` really replaces: `path` itself, or the file a symlink points to (followed to
// its end, so the link stays a link). ctm::Error when something exists there that is not a regular file (a
// folder, a FIFO, a device such as /dev/null), when the folder cannot be created, or when it does not accept
// a new file (read-only, no permission, not a folder); the message names the path. Creates nothing: missing
// folders are made when the file is written (AtomicFile).
std::string check_output_file(const std::string& path);
// The same for a folder that a task writes into: it exists or is created, is a folder, and accepts files.
void check_output_dir(const std::string& dir);

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // check_output_file(path), its folders made; stale temporaries of
                                          // dead runs removed
  ~AtomicFile();                          // removes the temporary file unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::ostream& stream() { return out_; }
  const std::string& path() const { return path_; }  // the file replaced (a symlink's target)
  const std::string& tmp_path() const { return tmp_; }
  void commit();  // flush, close, check every step (a full disk is an error naming the file), rename

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

// Two files that describe each other (results and their summary, samples and their settings): `data` is
// committed first and `descriptor` last, and the old descriptor is removed before either, so whenever the
// descriptor exists it describes the data beside it.
void commit_together(AtomicFile& data, AtomicFile& descriptor);

// A folder written as a whole (a model folder): files go into a temporary folder beside the target, and
// commit() swaps it into place in one step (renameat2 RENAME_EXCHANGE) and removes the old one, so a reader
// sees the old folder or the new one, never a mix (a full disk mid-way leaves the old folder untouched).
// Checks up front that an AtomicDir at `dir` can be committed: nothing but a folder there, and its parent
// accepts new entries.
void check_output_folder(const std::string& dir);

class AtomicDir {
 public:
  explicit AtomicDir(std::string dir);  // ctm::Error if `dir` exists and is not a folder
  ~AtomicDir();                         // removes the temporary folder unless commit() ran
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  const std::string& path() const { return tmp_; }  // write the folder's files here
  const std::string& target() const { return dir_; }
  void commit();

 private:
  std::string dir_, tmp_;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view data);
std::string read_file(const std::string& path);  // whole file; ctm::Error naming the path if unreadable
bool file_exists(const std::string& path);
// A 64-bit FNV-1a hash of the file's bytes, as 16 hex digits: tells whether an input changed between runs.
std::string file_fingerprint(const std::string& path);
void make_dirs(const std::string& dir);  // mkdir -p; ctm::Error on failure

}  // namespace ctm
