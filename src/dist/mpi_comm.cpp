#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <exception>

#include "ctm/core/error.hpp"
#include "ctm/dist/comm.hpp"

// Every MPI call is checked; the message names the call and where it was made.
#define CTM_MPI(call)                                                                    \
  do {                                                                                   \
    int ctm_mpi_rc_ = (call);                                                            \
    if (ctm_mpi_rc_ != MPI_SUCCESS) {                                                    \
      char ctm_mpi_msg_[MPI_MAX_ERROR_STRING];                                           \
      int ctm_mpi_len_ = 0;                                                              \
      MPI_Error_string(ctm_mpi_rc_, ctm_mpi_msg_, &ctm_mpi_len_);                        \
      throw ::ctm::Error(::ctm::str(#call, " failed at ", __FILE__, ":", __LINE__, ": ", \
                                    std::string(ctm_mpi_msg_, ctm_mpi_len_)));           \
    }                                                                                    \
  } while (0)

namespace ctm::dist {
namespace {

class MpiComm final : public Comm {
 public:
  explicit MpiComm(MPI_Comm comm) : comm_(comm) {
    CTM_MPI(MPI_Comm_rank(comm_, &rank_));
    CTM_MPI(MPI_Comm_size(comm_, &size_));
    MPI_Comm node;
    CTM_MPI(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    CTM_MPI(MPI_Comm_rank(node, &local_rank_));
    CTM_MPI(MPI_Comm_size(node, &local_size_));
    MPI_Comm_free(&node);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  void barrier() override { CTM_MPI(MPI_Barrier(comm_)); }

  std::vector<std::string> allgather(const std::string& mine) override {
    return gather_impl(mine, /*root=*/-1);
  }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    return gather_impl(mine, root);
  }

  std::string broadcast(const std::string& value, int root) override {
    long long n = static_cast<long long>(value.size());
    CTM_MPI(MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm_));
    std::string out = rank_ == root ? value : std::string(static_cast<size_t>(n), '\0');
    bcast_bytes(out.data(), n, root);
    return out;
  }

  void allreduce_sum(double* data, int64_t n) override { allreduce(data, n, MPI_DOUBLE); }
  void allreduce_sum(float* data, int64_t n) override { allreduce(data, n, MPI_FLOAT); }
  void allreduce_sum(int64_t* data, int64_t n) override { allreduce(data, n, MPI_INT64_T); }

  bool all(bool flag) override {
    int v = flag ? 1 : 0, out = 0;
    CTM_MPI(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_LAND, comm_));
    return out != 0;
  }
  bool any(bool flag) override {
    int v = flag ? 1 : 0, out = 0;
    CTM_MPI(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_LOR, comm_));
    return out != 0;
  }
  int64_t mpi_fortran_handle() const override { return MPI_Comm_c2f(comm_); }

  void allreduce_sum(at::Tensor& t) override {
    check_collective("allreduce_sum", t, t, 1, 1);
    if (!t.is_cpu() || is_half(t)) {  // through a CPU (float32) copy
      auto staged = t.to(torch::kCPU, is_half(t) ? torch::kFloat32 : t.scalar_type());
      allreduce_sum(staged);
      t.copy_(staged);
      return;
    }
    const auto type = sum_type(t);
    const int64_t n = t.numel(), elem = t.element_size();
    auto* p = static_cast<char*>(t.data_ptr());
    for (int64_t off = 0; off < n; off += kChunk)
      CTM_MPI(MPI_Allreduce(MPI_IN_PLACE, p + off * elem,
                            static_cast<int>(std::min<int64_t>(kChunk, n - off)), type, MPI_SUM, comm_));
  }

  void allgather(const at::Tensor& in, at::Tensor& out) override {
    check_collective("allgather", in, out, 1, size_);
    if (!in.is_cpu()) {
      auto staged = torch::empty(out.sizes(), out.options().device(torch::kCPU));
      allgather(in.cpu(), staged);
      out.copy_(staged);
      return;
    }
    const int n = element_count("allgather", in.numel());
    CTM_MPI(MPI_Allgather(in.data_ptr(), n, bytes_type(in), out.data_ptr(), n, bytes_type(in), comm_));
  }

  void reduce_scatter_sum(const at::Tensor& in, at::Tensor& out) override {
    check_collective("reduce_scatter_sum", in, out, size_, 1);
    if (!in.is_cpu() || is_half(in)) {
      const auto dt = is_half(in) ? torch::kFloat32 : in.scalar_type();
      auto staged = torch::empty(out.sizes(), torch::dtype(dt));
      reduce_scatter_sum(in.to(torch::kCPU, dt), staged);
      out.copy_(staged);
      return;
    }
    const int n = element_count("reduce_scatter_sum", out.numel());
    CTM_MPI(MPI_Reduce_scatter_block(in.data_ptr(), out.data_ptr(), n, sum_type(in), MPI_SUM, comm_));
  }

  void broadcast(at::Tensor& t, int root) override {
    check_collective("broadcast", t, t, 1, 1);
    if (!t.is_cpu()) {
      auto staged = t.cpu();
      broadcast(staged, root);
      t.copy_(staged);
      return;
    }
    bcast_bytes(static_cast<char*>(t.data_ptr()), static_cast<long long>(t.nbytes()), root);
  }

 private:
  static constexpr long long kChunk = 1 << 30;  // MPI counts are int: move large buffers in chunks

  void bcast_bytes(char* p, long long n, int root) {
    for (long long off = 0; off < n; off += kChunk)
      CTM_MPI(MPI_Bcast(p + off, static_cast<int>(std::min(kChunk, n - off)), MPI_BYTE, root, comm_));
  }

  static bool is_half(const at::Tensor& t) {
    return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
  }
  // The MPI type to sum a tensor of this dtype in.
  static MPI_Datatype sum_type(const at::Tensor& t) {
    switch (t.scalar_type()) {
      case torch::kFloat32:
        return MPI_FLOAT;
      case torch::kFloat64:
        return MPI_DOUBLE;
      case torch::kInt64:
        return MPI_INT64_T;
      case torch::kInt32:
        return MPI_INT32_T;
      default:
        throw Error(ctm::str("MPI sum of ", t.scalar_type(), " tensors is not supported"));
    }
  }
  // An unsigned integer type of the element's width: moving elements needs no arithmetic.
  static MPI_Datatype bytes_type(const at::Tensor& t) {
    switch (t.element_size()) {
      case 1:
        return MPI_UINT8_T;
      case 2:
        return MPI_UINT16_T;
      case 4:
        return MPI_UINT32_T;
      case 8:
        return MPI_UINT64_T;
      default:
        throw Error(ctm::str("MPI: no transfer type for ", t.scalar_type(), " tensors"));
    }
  }
  static int element_count(const char* what, int64_t n) {
    CTM_CHECK(n <= INT_MAX, what, ": ", n, " elements per rank exceed MPI's int count");
    return static_cast<int>(n);
  }

  template <class T>
  void allreduce(T* data, int64_t n, MPI_Datatype type) {
    for (int64_t off = 0; off < n; off += kChunk)
      CTM_MPI(MPI_Allreduce(MPI_IN_PLACE, data + off, static_cast<int>(std::min<int64_t>(kChunk, n - off)),
                            type, MPI_SUM, comm_));
  }

  // root < 0: everyone receives. Strings travel as lengths then point-to-point bytes (no 2 GiB limit per
  // rank).
  std::vector<std::string> gather_impl(const std::string& mine, int root) {
    long long n = static_cast<long long>(mine.size());
    std::vector<long long> sizes(size_);
    CTM_MPI(MPI_Allgather(&n, 1, MPI_LONG_LONG, sizes.data(), 1, MPI_LONG_LONG, comm_));
    std::vector<std::string> out;
    const bool receive = root < 0 || rank_ == root;
    if (receive) out.resize(size_);
    for (int r = 0; r < size_; ++r) {
      if (root < 0) {
        std::string buf = r == rank_ ? mine : std::string(static_cast<size_t>(sizes[r]), '\0');
        bcast_bytes(buf.data(), sizes[r], r);
        out[r] = std::move(buf);
      } else if (r == root) {
        if (rank_ == root) out[r] = mine;
      } else if (rank_ == r) {
        send_bytes(mine.data(), sizes[r], root);
      } else if (rank_ == root) {
        out[r].resize(static_cast<size_t>(sizes[r]));
        recv_bytes(out[r].data(), sizes[r], r);
      }
    }
    return out;
  }
  void send_bytes(const char* p, long long n, int to) {
    for (long long off = 0; off < n; off += kChunk)
      CTM_MPI(MPI_Send(p + off, static_cast<int>(std::min(kChunk, n - off)), MPI_BYTE, to, 7, comm_));
  }
  void recv_bytes(char* p, long long n, int from) {
    for (long long off = 0; off < n; off += kChunk)
      CTM_MPI(MPI_Recv(p + off, static_cast<int>(std::min(kChunk, n - off)), MPI_BYTE, from, 7, comm_,
                       MPI_STATUS_IGNORE));
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_world_comm() {
  return std::make_unique<MpiComm>(MPI_COMM_WORLD);
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // SERIALIZED, not FUNNELED: on CUDA the autograd engine runs a sharded model's backward (and so its
    // gathers) on its device thread while the main thread waits.
    CTM_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided));
  }
  world_ = make_world_comm();
}

MpiSession::~MpiSession() {
  world_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && std::uncaught_exceptions() == 0) MPI_Finalize();
}

void MpiSession::abort(int code) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  world_.reset();
  MPI_Finalize();
  std::exit(code);
}

}  // namespace ctm::dist
