// tools/h5check.py (h5py alone) on files ctm's writers made: they are valid; broken copies fail with the
// problem named. Skipped, saying why, where h5py is missing.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "ctm/core/error.hpp"
#include "ctm/io/ce_scores.hpp"
#include "ctm/io/rollouts.hpp"
#include "score_files_util.hpp"

namespace {

namespace h5 = ctm::io::h5;
using ctm::test::ScratchDir;

// Debian's python3 has python3-h5py; another python3 first on PATH (pyenv) may not.
std::string python_with_h5py() {
  for (const char* py : {"/usr/bin/python3", "python3"})
    if (std::system((std::string(py) + " -c 'import h5py, numpy' >/dev/null 2>&1").c_str()) == 0) return py;
  return "";
}

// Runs h5check.py on the files; returns its exit status, its output in *out.
int h5check(const std::string& python, const std::vector<std::string>& files, std::string* out) {
  std::string cmd = python + " " + CTM_SOURCE_DIR + "/tools/h5check.py";
  for (const auto& f : files) cmd += " '" + f + "'";
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  out->clear();
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define REQUIRE_H5PY(py)                                                           \
  const std::string py = python_with_h5py();                                       \
  if (py.empty())                                                                  \
  GTEST_SKIP() << "h5py is missing (apt-get install python3-h5py python3-numpy): " \
                  "tools/h5check.py not run"

TEST(H5Check, FilesFromCtmsWritersAreValid) {
  REQUIRE_H5PY(py);
  ScratchDir tmp("h5check_valid");
  const std::vector<std::string> files = {tmp.path("a.ce_scores.h5"), tmp.path("empty.ce_scores.h5"),
                                          tmp.path("a.rollouts.h5"), tmp.path("empty.rollouts.h5")};
  ctm::io::write_ce_scores(files[0], ctm::test::random_ce_scores(30, 3));
  ctm::io::write_ce_scores(files[1], ctm::test::random_ce_scores(0, 3));
  const ctm::io::Rollouts rollouts = ctm::test::random_rollouts(12, 4);
  ctm::io::write_rollouts(files[2], rollouts);
  ctm::io::write_rollouts(files[3], ctm::test::random_rollouts(0, 4));
  std::string out;
  EXPECT_EQ(h5check(py, files, &out), 0) << out;
  for (const auto& f : files) EXPECT_NE(out.find(f + ": valid"), std::string::npos) << out;
  EXPECT_NE(out.find("pairs 30"), std::string::npos) << out;
  int64_t critical = 0;
  for (const auto& tr : rollouts.trajectories) critical += tr.critical_position >= 0;
  EXPECT_NE(out.find("trajectories 12, "), std::string::npos) << out;
  EXPECT_NE(out.find(ctm::str("with_critical_token ", critical)), std::string::npos) << out;
}

// Writes a file with ctm's writer, then overwrites values of one dataset in place.
template <class T>
void poke(const std::string& path, const std::string& dataset, int64_t index, T value) {
  h5::File f = h5::File::open(path, /*write=*/true);
  f.dataset(dataset).write(&value, index, 1);
  f.close();
}

TEST(H5Check, BrokenFilesFailNamingTheProblem) {
  REQUIRE_H5PY(py);
  ScratchDir tmp("h5check_broken");
  const std::string ce = tmp.path("ce.h5"), ce2 = tmp.path("ce2.h5"), ro = tmp.path("ro.h5"),
                    ro2 = tmp.path("ro2.h5");
  ctm::io::write_ce_scores(ce, ctm::test::random_ce_scores(10, 3));
  ctm::io::write_ce_scores(ce2, ctm::test::random_ce_scores(10, 3));
  const ctm::io::Rollouts r = ctm::test::random_rollouts(6, 9, 20, 2);
  ctm::io::write_rollouts(ro, r);
  ctm::io::write_rollouts(ro2, r);
  poke<float>(ce, "chosen/ce_prob", 5, 1.5f);
  poke<int64_t>(ce2, "rejected/offsets", 3, int64_t{1} << 40);
  poke<int8_t>(ro, "without/alt_correct", 0, int8_t{3});
  poke<int16_t>(ro2, "with/correct", 1, int16_t{200});

  std::string out;
  EXPECT_EQ(h5check(py, {ce}, &out), 1) << out;
  EXPECT_NE(out.find("/chosen/ce_prob[5] = 1.5 is not a probability"), std::string::npos) << out;
  EXPECT_EQ(h5check(py, {ce2}, &out), 1) << out;
  EXPECT_NE(out.find("/rejected/offsets: decreases at item 3"), std::string::npos) << out;
  EXPECT_EQ(h5check(py, {ro}, &out), 1) << out;
  EXPECT_NE(out.find("/without/alt_correct: values other than 0 and 1"), std::string::npos) << out;
  EXPECT_EQ(h5check(py, {ro2}, &out), 1) << out;
  EXPECT_NE(out.find("/with: token 1: 200 correct of"), std::string::npos) << out;
}

}  // namespace
