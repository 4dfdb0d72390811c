// Output safety: what may be replaced, symlinks, stale temporaries of killed runs, folders swapped as a
// whole.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"

namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ctm::Error& e) {
    return e.what();
  }
  return "";
}

std::string host() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace

TEST(OutputPaths, OnlyRegularFilesAreReplaced) {
  const fs::path dir = fresh_dir("ctm_outpaths");
  // A FIFO, a device and a folder are refused, named, and left as they are.
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_NE(
      error_of([&] { ctm::write_file_atomic(fifo, "x"); }).find("'" + fifo + "': it exists and is a FIFO"),
      std::string::npos);
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_NE(error_of([&] { ctm::check_output_file("/dev/null"); }).find("is a device"), std::string::npos);
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_NE(error_of([&] { ctm::AtomicFile f(dir.string()); }).find("is a folder"), std::string::npos);
  // A folder that cannot exist is found before any work.
  EXPECT_NE(
      error_of([&] { ctm::check_output_file("/proc/ctm-no-such/out.jsonl"); }).find("/proc/ctm-no-such"),
      std::string::npos);
  EXPECT_NE(error_of([&] { ctm::check_output_dir("/proc/ctm-no-such"); }).find("/proc/ctm-no-such"),
            std::string::npos);
  // A regular file or nothing is fine.
  EXPECT_EQ(ctm::check_output_file((dir / "new.txt").string()), (dir / "new.txt").string());
}

TEST(OutputPaths, SymlinksAreFollowedAndStayLinks) {
  const fs::path dir = fresh_dir("ctm_symlink");
  const fs::path target = dir / "real.txt", link = dir / "link.txt", link2 = dir / "link2.txt";
  ctm::write_file_atomic(target.string(), "old");
  fs::create_symlink("real.txt", link);
  fs::create_symlink(link, link2);
  ctm::write_file_atomic(link2.string(), "new");
  EXPECT_TRUE(fs::is_symlink(link2));
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(ctm::read_file(target.string()), "new");
  fs::create_symlink("/dev/null", dir / "to_null");
  EXPECT_NE(error_of([&] { ctm::write_file_atomic((dir / "to_null").string(), "x"); }).find("is a device"),
            std::string::npos);
}

TEST(OutputPaths, StaleTemporariesOfDeadRunsAreRemoved) {
  const fs::path dir = fresh_dir("ctm_stale");
  const fs::path target = dir / "out.json";
  // A pid that cannot be running (beyond pid_max) and one that is (this process's parent).
  const fs::path dead = dir / ("out.json.tmp." + host() + ".99999999");
  const fs::path alive = dir / ("out.json.tmp." + host() + "." + std::to_string(::getppid()));
  std::ofstream(dead) << "x";
  std::ofstream(alive) << "y";
  ctm::write_file_atomic(target.string(), "z");
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
}

TEST(AtomicDir, SwapsTheFolderAsAWhole) {
  const fs::path dir = fresh_dir("ctm_atomic_dir");
  const std::string model = (dir / "model").string();
  {
    ctm::AtomicDir folder(model);
    ctm::write_file_atomic(folder.path() + "/config.json", "v1");
    ctm::write_file_atomic(folder.path() + "/weights", "w1");
    EXPECT_FALSE(fs::exists(model));
    folder.commit();
  }
  EXPECT_EQ(ctm::read_file(model + "/config.json"), "v1");
  {  // abandoned half-way (as when the disk fills up): the old folder is untouched, the temporary one gone
    ctm::AtomicDir folder(model);
    ctm::write_file_atomic(folder.path() + "/config.json", "v2");
  }
  EXPECT_EQ(ctm::read_file(model + "/config.json"), "v1");
  EXPECT_EQ(ctm::read_file(model + "/weights"), "w1");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  {  // replaced: no file of the old folder survives
    ctm::AtomicDir folder(model);
    ctm::write_file_atomic(folder.path() + "/config.json", "v3");
    folder.commit();
  }
  EXPECT_EQ(ctm::read_file(model + "/config.json"), "v3");
  EXPECT_FALSE(fs::exists(model + "/weights"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  ctm::write_file_atomic((dir / "file").string(), "f");
  EXPECT_NE(
      error_of([&] { ctm::check_output_folder((dir / "file").string()); }).find("it exists and is a file"),
      std::string::npos);
}

TEST(AtomicFile, CommitTogetherKeepsTheDescriptorTrue) {
  const fs::path dir = fresh_dir("ctm_together");
  const std::string data = (dir / "result.jsonl").string(), summary = (dir / "summary.json").string();
  ctm::write_file_atomic(data, "old results");
  ctm::write_file_atomic(summary, "old summary");
  {
    ctm::AtomicFile d(data), s(summary);
    d.stream() << "new results";
    s.stream() << "new summary";
    ctm::commit_together(d, s);
  }
  EXPECT_EQ(ctm::read_file(data), "new results");
  EXPECT_EQ(ctm::read_file(summary), "new summary");
}
