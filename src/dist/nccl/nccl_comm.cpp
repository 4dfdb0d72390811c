// The NCCL backend (built with -DCTM_WITH_NCCL=ON): collectives on CUDA tensors over NCCL, written against
// the CUDA runtime and NCCL C APIs only (raw device pointers, a stream of its own), so it builds against any
// libtorch. Strings, scalars and CPU tensors go to the host communicator (MPI), which also carries the NCCL
// id.
#include <cuda_runtime.h>
#include <nccl.h>
#include <torch/torch.h>

#include <cstring>

#include "ctm/core/error.hpp"
#include "ctm/dist/device.hpp"

// Every CUDA and NCCL call is checked; the message names the call and where it was made.
#define CTM_CUDA_CHECK(call)                                                                                \
  do {                                                                                                      \
    const cudaError_t ctm_cuda_rc_ = (call);                                                                \
    if (ctm_cuda_rc_ != cudaSuccess)                                                                        \
      throw ::ctm::Error(::ctm::str(#call, " failed at ", __FILE__, ":", __LINE__, ": ",                    \
                                    cudaGetErrorName(ctm_cuda_rc_), " (", cudaGetErrorString(ctm_cuda_rc_), \
                                    ")"));                                                                  \
  } while (0)

#define CTM_NCCL(call)                                                                                 \
  do {                                                                                                 \
    const ncclResult_t ctm_nccl_rc_ = (call);                                                          \
    if (ctm_nccl_rc_ != ncclSuccess)                                                                   \
      throw ::ctm::Error(::ctm::str(#call, " failed at ", __FILE__, ":", __LINE__, ": ",               \
                                    ncclGetErrorString(ctm_nccl_rc_), " (", ncclGetLastError(nullptr), \
                                    ")"));                                                             \
  } while (0)

namespace ctm::dist {
namespace {

ncclDataType_t nccl_type(const at::Tensor& t, bool sum) {
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return ncclFloat32;
    case torch::kFloat64:
      return ncclFloat64;
    case torch::kHalf:
      return ncclFloat16;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kInt64:
      return ncclInt64;
    case torch::kInt32:
      return ncclInt32;
    case torch::kInt8:
      return ncclInt8;
    case torch::kUInt8:
    case torch::kBool:
      if (!sum) return ncclUint8;
      [[fallthrough]];
    default:
      throw Error(
          ctm::str("NCCL ", sum ? "sum" : "transfer", " of ", t.scalar_type(), " tensors is not supported"));
  }
}

class NcclComm final : public Comm {
 public:
  NcclComm(Comm& host, int device) : host_(host), device_(device) {
    CTM_CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id;
    std::string bytes;
    if (host_.rank() == 0) {
      CTM_NCCL(ncclGetUniqueId(&id));
      bytes.assign(reinterpret_cast<const char*>(&id), sizeof id);
    }
    bytes = host_.broadcast(bytes, 0);
    CTM_CHECK(bytes.size() == sizeof id, "NCCL: the unique id from rank 0 has ", bytes.size(),
              " bytes, expected ", sizeof id);
    std::memcpy(&id, bytes.data(), sizeof id);
    // A blocking stream: ordered after the work torch queued on the legacy default stream, which it uses
    // unless told otherwise, so a collective reads what the kernels before it wrote.
    CTM_CUDA_CHECK(cudaStreamCreate(&stream_));
    CTM_NCCL(ncclCommInitRank(&comm_, host_.size(), id, host_.rank()));
  }
  ~NcclComm() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  int local_size() const override { return host_.local_size(); }
  void barrier() override { host_.barrier(); }
  std::vector<std::string> allgather(const std::string& mine) override { return host_.allgather(mine); }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    return host_.gather(mine, root);
  }
  std::string broadcast(const std::string& value, int root) override { return host_.broadcast(value, root); }
  void allreduce_sum(double* data, int64_t n) override { host_.allreduce_sum(data, n); }
  void allreduce_sum(float* data, int64_t n) override { host_.allreduce_sum(data, n); }
  void allreduce_sum(int64_t* data, int64_t n) override { host_.allreduce_sum(data, n); }
  bool all(bool flag) override { return host_.all(flag); }
  bool any(bool flag) override { return host_.any(flag); }
  int64_t mpi_fortran_handle() const override { return host_.mpi_fortran_handle(); }

  void allreduce_sum(at::Tensor& t) override {
    check_collective("allreduce_sum", t, t, 1, 1);
    if (t.is_cpu()) return host_.allreduce_sum(t);
    begin(t);
    CTM_NCCL(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t, true),
                           ncclSum, comm_, stream_));
    finish();
  }
  void allgather(const at::Tensor& in, at::Tensor& out) override {
    check_collective("allgather", in, out, 1, size());
    if (in.is_cpu()) return host_.allgather(in, out);
    begin(in);
    CTM_NCCL(ncclAllGather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()),
                           nccl_type(in, false), comm_, stream_));
    finish();
  }
  void reduce_scatter_sum(const at::Tensor& in, at::Tensor& out) override {
    check_collective("reduce_scatter_sum", in, out, size(), 1);
    if (in.is_cpu()) return host_.reduce_scatter_sum(in, out);
    begin(in);
    CTM_NCCL(ncclReduceScatter(in.data_ptr(), out.data_ptr(), static_cast<size_t>(out.numel()),
                               nccl_type(in, true), ncclSum, comm_, stream_));
    finish();
  }
  void broadcast(at::Tensor& t, int root) override {
    check_collective("broadcast", t, t, 1, 1);
    if (t.is_cpu()) return host_.broadcast(t, root);
    begin(t);
    CTM_NCCL(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t, false),
                           root, comm_, stream_));
    finish();
  }

 private:
  void begin(const at::Tensor& t) {
    CTM_CHECK(t.is_cuda() && t.device().index() == device_, "NCCL communicator of cuda:", device_,
              " given a tensor on ", t.device());
    CTM_CUDA_CHECK(cudaSetDevice(device_));
  }
  // Collectives complete before returning: the caller may free or reuse the buffers at once.
  void finish() { CTM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  Comm& host_;
  int device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(Comm& host, int cuda_device) {
  return std::make_unique<NcclComm>(host, cuda_device);
}

}  // namespace ctm::dist
