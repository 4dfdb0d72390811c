// The MPI backend's tensor collectives against values computed here (tests/dist/comm_checks.hpp).
#include <gtest/gtest.h>

#include "../dist/comm_checks.hpp"
#include "mpi_test.hpp"

TEST(MpiComm, TensorCollectives) {
  ctm::dist::test::check_tensor_collectives(ctm::dist::test::world(), torch::kCPU);
}
