// The communicator every task uses. One interface, MPI underneath on CPU (NCCL joins it for CUDA tensors
// later), so tasks and tests never call MPI directly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ctm::dist {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes on this node
  virtual int local_size() const = 0;
  virtual void barrier() = 0;
  // Every rank's string, in rank order, on every rank.
  virtual std::vector<std::string> allgather(const std::string& mine) = 0;
  // Every rank's string, in rank order, on root (other ranks get an empty vector).
  virtual std::vector<std::string> gather(const std::string& mine, int root = 0) = 0;
  virtual std::string broadcast(const std::string& value, int root = 0) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(int64_t* data, int64_t n) = 0;
  // True when the flag is true on every rank (used so all ranks agree on pass/fail or on stopping).
  virtual bool all(bool flag) = 0;
  virtual bool any(bool flag) = 0;
  // The MPI communicator underneath as MPI_Comm_c2f gives it (MPI_Comm_f2c turns it back), for libraries
  // that take an MPI_Comm (parallel HDF5); -1 for a backend without MPI.
  virtual int64_t mpi_fortran_handle() const { return -1; }
};

// Initialises MPI on construction (also under a plain ./ctm without mpirun) and finalises it on destruction,
// except while an exception unwinds: then abort() must be used so the other ranks do not hang.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  Comm& world() { return *world_; }
  [[noreturn]] void abort(int code);

 private:
  std::unique_ptr<Comm> world_;
};

// A communicator over MPI_COMM_WORLD (MPI must be initialised).
std::unique_ptr<Comm> make_world_comm();

}  // namespace ctm::dist
