// Runs under mpirun -np 2 (ctest: mpi.np2). Every rank runs every test; the main() below reduces the outcome
// so all ranks agree on pass/fail.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi_test.hpp"

namespace {
ctm::dist::Comm* g_comm = nullptr;
}

ctm::dist::Comm& ctm::dist::test::world() {
  return *g_comm;
}

TEST(MpiComm, AllgatherGatherBroadcast) {
  auto& c = *g_comm;
  const std::string mine(static_cast<size_t>(c.rank() + 1) * 3, static_cast<char>('a' + c.rank()));
  auto all = c.allgather(mine);
  ASSERT_EQ(static_cast<int>(all.size()), c.size());
  for (int r = 0; r < c.size(); ++r) EXPECT_EQ(all[r], std::string(static_cast<size_t>(r + 1) * 3, 'a' + r));
  auto at_root = c.gather(mine, 0);
  if (c.rank() == 0) {
    EXPECT_EQ(at_root, all);
  } else {
    EXPECT_TRUE(at_root.empty());
  }
  EXPECT_EQ(c.broadcast(c.rank() == 0 ? "from root" : "", 0), "from root");
}

TEST(MpiComm, ReductionsAgree) {
  auto& c = *g_comm;
  std::vector<double> d = {1.0 * c.rank(), 2.5};
  c.allreduce_sum(d.data(), 2);
  EXPECT_DOUBLE_EQ(d[0], c.size() * (c.size() - 1) / 2.0);
  EXPECT_DOUBLE_EQ(d[1], 2.5 * c.size());
  std::vector<int64_t> n = {c.rank() + 1};
  c.allreduce_sum(n.data(), 1);
  EXPECT_EQ(n[0], c.size() * (c.size() + 1) / 2);
  EXPECT_TRUE(c.all(true));
  EXPECT_EQ(c.all(c.rank() == 0), c.size() == 1);
  EXPECT_TRUE(c.any(c.rank() == 0));
  EXPECT_GE(c.size(), 1);
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ctm::dist::MpiSession mpi(&argc, &argv);
  g_comm = &mpi.world();
  if (g_comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local = RUN_ALL_TESTS();
  const bool ok = g_comm->all(local == 0);
  if (g_comm->rank() == 0)
    std::printf("mpi tests on %d ranks: %s\n", g_comm->size(), ok ? "all passed" : "FAILED");
  return ok ? 0 : 1;
}
