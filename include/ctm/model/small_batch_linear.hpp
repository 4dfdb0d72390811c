// x · Wᵀ (+ bias) for the few rows of a decode step, on the CPU in float32. OpenBLAS packs the whole weight
// matrix for every product, so at decode (rows = batch size, weights streamed from memory once per step) a
// third of its time went to packing; this kernel reads each weight row straight from memory into the
// multiply-adds, splits the output features across ctm's CPU workers, and keeps each weight tile in L1 while
// every input row passes over it.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace ctm::model {

// Rows up to which apply_linear() takes the small-batch kernel.
constexpr int64_t kSmallBatchMaxRows = 96;

// Whether apply_linear() would use the small-batch kernel for these operands: CPU, float32, at most
// kSmallBatchMaxRows rows, no gradient wanted, and an AVX2+FMA CPU.
bool small_batch_applies(const torch::Tensor& x, const torch::Tensor& weight);

// torch::linear(x, weight, bias), through the small-batch kernel where it applies.
torch::Tensor apply_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias = {});

// The kernel alone: y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]); row-major and contiguous; needs AVX2+FMA
// (small_batch_applies). Exposed for tests and benchmarks.
void small_batch_linear(const float* x, int64_t M, int64_t K, const float* w, int64_t N, const float* bias,
                        float* y);
// Columns [offset, offset + n) of a wider output: x · w[n, K]ᵀ (+ bias[n]).
struct LinearSegment {
  const float* w;
  int64_t n;
  const float* bias;  // or nullptr
  int64_t offset;
};
// y[M, ldy] (row stride ldy) gets every segment's columns, all in one job across the workers: e.g. q, k and v
// of one input, or gate and up. Each output is computed as small_batch_linear computes it.
void small_batch_linear_segments(const float* x, int64_t M, int64_t K, const LinearSegment* segs,
                                 int64_t count, float* y, int64_t ldy);
// The AVX2 build alone (small_batch_linear takes the AVX-512 one where the CPU has it), for tests.
void small_batch_linear_avx2(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                             const float* bias, float* y);

}  // namespace ctm::model
