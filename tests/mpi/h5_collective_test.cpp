// Collective HDF5 (run by ctest under mpirun -np 2; by hand with -np 1 and -np 3): each rank writes its block
// of pairs / trajectories; the file must equal the serial writer's, dataset by dataset and value for value,
// including with ranks that hold no items and with uneven blocks.
#include "ctm/dist/h5_collective.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "../io/score_files_util.hpp"
#include "ctm/core/error.hpp"
#include "ctm/dist/partition.hpp"

namespace {

namespace fs = std::filesystem;
namespace h5 = ctm::io::h5;

ctm::dist::Comm& comm() {
  static std::unique_ptr<ctm::dist::Comm> c = ctm::dist::make_world_comm();  // MPI is up: main made a session
  return *c;
}

// A folder rank 0 makes and every rank uses; removed by rank 0 when all are done.
struct SharedDir {
  std::string dir;
  SharedDir() {
    std::string made;
    if (comm().rank() == 0) {
      std::string tmpl = (fs::path(testing::TempDir()) / "ctm_h5_collective_XXXXXX").string();
      made = mkdtemp(tmpl.data()) ? tmpl : "";
    }
    dir = comm().broadcast(made, 0);
  }
  ~SharedDir() {
    comm().barrier();
    if (comm().rank() == 0) fs::remove_all(dir);
  }
  std::string path(const std::string& f) const { return dir + "/" + f; }
};

// Items [begin, end) of `all` for this rank, with cut points cuts[r] (cuts.size() == ranks + 1).
template <class T>
std::vector<T> my_block(const std::vector<T>& all, const std::vector<int64_t>& cuts) {
  const int r = comm().rank();
  return std::vector<T>(all.begin() + cuts[r], all.begin() + cuts[r + 1]);
}

std::vector<int64_t> block_cuts(int64_t n) {
  std::vector<int64_t> cuts{0};
  for (int r = 0; r < comm().size(); ++r) cuts.push_back(ctm::dist::block_range(n, r, comm().size()).second);
  return cuts;
}

// Everything to the last rank (the others hold nothing).
std::vector<int64_t> all_on_last(int64_t n) {
  std::vector<int64_t> cuts(static_cast<size_t>(comm().size()), 0);
  cuts.push_back(n);
  return cuts;
}

// Every dataset of the layout `flat` names, read from both files, equal in type and value; attributes too.
void expect_same_file(const std::string& a, const std::string& b, const ctm::io::FlatFile& flat) {
  const h5::File fa = h5::File::open(a), fb = h5::File::open(b);
  for (const auto& col : flat.columns) {
    std::visit(
        [&](const auto& v) {
          using T = typename std::decay_t<decltype(v)>::value_type;
          EXPECT_EQ(fa.dataset(col.name).type(), fb.dataset(col.name).type()) << col.name;
          EXPECT_EQ(fa.read<T>(col.name), fb.read<T>(col.name)) << col.name;
        },
        col.data);
  }
  for (const auto& s : flat.strings) EXPECT_EQ(fa.read_strings(s.name), fb.read_strings(s.name)) << s.name;
  for (const auto& attr : flat.attrs) {
    if (std::holds_alternative<std::string>(attr.value)) {
      EXPECT_EQ(fa.string_attr(attr.name), fb.string_attr(attr.name)) << attr.name;
    } else {
      EXPECT_EQ(fa.double_attr(attr.name), fb.double_attr(attr.name)) << attr.name;
    }
  }
}

void check_ce_scores(int64_t pairs, const std::vector<int64_t>& cuts, const h5::Storage& storage = {}) {
  SharedDir dir;
  const ctm::io::CeScores all = ctm::test::random_ce_scores(pairs, 17, 300);
  ctm::io::CeScores mine = all;
  mine.pairs = my_block(all.pairs, cuts);
  const std::string collective = dir.path("collective.ce_scores.h5"),
                    serial = dir.path("serial.ce_scores.h5");
  ctm::dist::write_ce_scores(comm(), collective, mine, storage);
  if (comm().rank() == 0) ctm::io::write_ce_scores(serial, all, storage);
  comm().barrier();
  expect_same_file(collective, serial, ctm::io::ce_scores_flat(all));
  const ctm::io::CeScores got = ctm::io::read_ce_scores(collective);
  ASSERT_EQ(got.pairs.size(), all.pairs.size());
  for (size_t p = 0; p < all.pairs.size(); ++p) EXPECT_TRUE(got.pairs[p] == all.pairs[p]) << "pair " << p;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.dir), {}), 2) << "a temporary file was left behind";
  if (comm().rank() == 0 && pairs > 100)
    std::printf("  %lld pairs on %d ranks: collective %lld bytes, serial %lld bytes\n",
                static_cast<long long>(pairs), comm().size(),
                static_cast<long long>(fs::file_size(collective)),
                static_cast<long long>(fs::file_size(serial)));
}

TEST(H5Collective, CeScoresEqualTheSerialFile) {
  check_ce_scores(13, block_cuts(13));
}

TEST(H5Collective, CeScoresManyChunksEqualTheSerialFile) {
  // ~300 tokens a side: token arrays of ~75k values, so chunks of 65536 straddle the ranks' hyperslabs.
  check_ce_scores(500, block_cuts(500));
  check_ce_scores(500, block_cuts(500), h5::Storage{1000, 1});   // many small chunks
  check_ce_scores(500, block_cuts(500), h5::Storage{65536, 0});  // chunked, no filters
}

TEST(H5Collective, RanksWithoutItems) {
  check_ce_scores(1, block_cuts(1));   // only rank 0 has a pair
  check_ce_scores(0, block_cuts(0));   // nobody has one
  check_ce_scores(9, all_on_last(9));  // the first ranks have none
}

void check_rollouts(int64_t trajectories, const std::vector<int64_t>& cuts) {
  SharedDir dir;
  const ctm::io::Rollouts all = ctm::test::random_rollouts(trajectories, 23, 200);
  ctm::io::Rollouts mine = all;
  mine.trajectories = my_block(all.trajectories, cuts);
  const std::string collective = dir.path("collective.rollouts.h5"), serial = dir.path("serial.rollouts.h5");
  ctm::dist::write_rollouts(comm(), collective, mine);
  if (comm().rank() == 0) ctm::io::write_rollouts(serial, all);
  comm().barrier();
  expect_same_file(collective, serial, ctm::io::rollouts_flat(all));
  const ctm::io::Rollouts got = ctm::io::read_rollouts(collective);
  ASSERT_EQ(got.trajectories.size(), all.trajectories.size());
  for (size_t t = 0; t < all.trajectories.size(); ++t)
    EXPECT_TRUE(got.trajectories[t] == ctm::test::with_full_alt_offsets(all.trajectories[t]))
        << "trajectory " << t;
}

TEST(H5Collective, RolloutsEqualTheSerialFile) {
  check_rollouts(11, block_cuts(11));
  check_rollouts(1, block_cuts(1));
  check_rollouts(7, all_on_last(7));
  check_rollouts(0, block_cuts(0));
}

TEST(H5Collective, AnInvalidItemOnOneRankFailsEveryRankAndWritesNothing) {
  SharedDir dir;
  const int64_t pairs = 3 * comm().size() + 1;
  const std::vector<int64_t> cuts = block_cuts(pairs);
  ctm::io::CeScores mine = ctm::test::random_ce_scores(pairs, 5);
  mine.pairs = my_block(mine.pairs, cuts);
  const int bad_rank = comm().size() - 1;
  if (comm().rank() == bad_rank) mine.pairs.back().rejected.ce_prob.back() = 2.0f;
  std::string error;
  try {
    ctm::dist::write_ce_scores(comm(), dir.path("x.h5"), mine);
  } catch (const ctm::Error& e) {
    error = e.what();
  }
  // Every rank names the pair by its index in the whole file: the last one.
  EXPECT_NE(error.find(ctm::str("pair ", pairs - 1, " rejected: ce_prob")), std::string::npos) << error;
  comm().barrier();
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.dir), {}), 0);
}

}  // namespace
