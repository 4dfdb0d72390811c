// The tensor collectives checked against values computed here, for any communicator and rank count: the same
// checks run on the local backend (tests/dist), under mpirun (tests/mpi) and on NCCL (tests/dist, with a
// GPU).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "ctm/core/error.hpp"
#include "ctm/dist/comm.hpp"

namespace ctm::dist::test {

// Element i of rank r's tensors: small integers, exact in every dtype checked (bfloat16 included) and in
// their sums over up to 8 ranks.
inline double element(int r, int64_t i) {
  return (r + 1) * 8 + i % 8;
}

inline torch::Tensor rank_tensor(int r, int64_t n, torch::Dtype dtype, torch::Device device) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(element(r, i));
  return torch::tensor(v, torch::kFloat64).to(device, dtype);
}

inline void check_tensor_collectives(Comm& c, torch::Device device) {
  const int R = c.size(), me = c.rank();
  for (const auto dtype : {torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kHalf, torch::kInt64}) {
    SCOPED_TRACE(c10::toString(dtype));
    // all-reduce: the sum over ranks, element by element
    auto t = rank_tensor(me, 37, dtype, device);
    c.allreduce_sum(t);
    std::vector<double> sums;
    for (int64_t i = 0; i < 37; ++i) {
      double s = 0;
      for (int r = 0; r < R; ++r) s += element(r, i);
      sums.push_back(s);
    }
    EXPECT_TRUE(torch::equal(t.cpu().to(torch::kFloat64), torch::tensor(sums, torch::kFloat64)));

    // all-gather of a [2, 3] shard per rank: [R * 2, 3], the shards' rows in rank order
    const auto shard = rank_tensor(me, 6, dtype, device).view({2, 3});
    auto gathered = torch::empty({R * 2, 3}, shard.options());
    c.allgather(shard, gathered);
    const auto flat = gathered.cpu().to(torch::kFloat64).view(-1);
    for (int r = 0; r < R; ++r)
      for (int64_t k = 0; k < 6; ++k)
        EXPECT_EQ(flat[r * 6 + k].item<double>(), element(r, k)) << r << " " << k;

    // reduce-scatter: block `me` of the R blocks of 5, summed over ranks
    const auto in = rank_tensor(me, R * 5, dtype, device);
    auto out = torch::empty({5}, in.options());
    c.reduce_scatter_sum(in, out);
    for (int64_t i = 0; i < 5; ++i) {
      double s = 0;
      for (int r = 0; r < R; ++r) s += element(r, me * 5 + i);
      EXPECT_EQ(out[i].item<double>(), s) << i;
    }

    // broadcast from the last rank
    auto b = rank_tensor(me, 11, dtype, device);
    c.broadcast(b, R - 1);
    EXPECT_TRUE(
        torch::equal(b.cpu().to(torch::kFloat64), rank_tensor(R - 1, 11, torch::kFloat64, torch::kCPU)));
  }
  // Mistakes are errors on every rank before anything is sent.
  auto small = torch::zeros({3}, torch::dtype(torch::kFloat32).device(device));
  auto wrong = torch::zeros({3 * R + 1}, small.options());
  EXPECT_THROW(c.allgather(small, wrong), Error);
  auto as_double = torch::zeros({3 * R}, small.options().dtype(torch::kFloat64));
  EXPECT_THROW(c.allgather(small, as_double), Error);
  auto strided = torch::zeros({4, 2}, small.options()).t();
  EXPECT_THROW(c.allreduce_sum(strided), Error);
}

}  // namespace ctm::dist::test
