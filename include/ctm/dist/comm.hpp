// The communicator every task uses. One interface with three backends, so tasks and tests never call MPI or
// NCCL directly: MPI (CPU tensors; the world of an mpirun), NCCL (CUDA tensors; built with CTM_WITH_NCCL, see
// device.hpp) and a local single-rank backend (no MPI at all).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

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

  // ---- tensors: contiguous, the same shape and dtype on every rank. MPI takes CPU tensors (a CUDA tensor is
  // staged through host memory) and sums bfloat16/float16 in float32; NCCL takes tensors on its GPU (and
  // hands CPU tensors to MPI). Every call is complete when it returns.
  virtual void allreduce_sum(at::Tensor& t) = 0;  // in place
  // out has size() x in.numel() elements: rank r's `in` lands at [r n, (r + 1) n). A [rows, ...] shard per
  // rank and an out of [size() rows, ...] give the rows in rank order.
  virtual void allgather(const at::Tensor& in, at::Tensor& out) = 0;
  // in has size() x out.numel() elements; out = the sum over ranks of in's block number rank() (the adjoint
  // of allgather: how gradients of gathered tensors return to their shards).
  virtual void reduce_scatter_sum(const at::Tensor& in, at::Tensor& out) = 0;
  virtual void broadcast(at::Tensor& t, int root = 0) = 0;  // in place, root's values on every rank
};

// Checks shared by the backends (ctm::Error naming the collective and what is wrong).
void check_collective(const char* what, const at::Tensor& in, const at::Tensor& out, int64_t in_blocks,
                      int64_t out_blocks);

// One rank, no MPI: collectives are copies (tests, and runs that must not initialise MPI).
std::unique_ptr<Comm> make_local_comm();

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
