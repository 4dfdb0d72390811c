// The communicator of the MPI test binary (MPI_COMM_WORLD; main() in comm_test.cpp sets it up).
#pragma once

#include "ctm/dist/comm.hpp"

namespace ctm::dist::test {

Comm& world();

}  // namespace ctm::dist::test
