// x · Wᵀ (+ bias) for the few rows of a decode step or a prompt chunk, on the CPU in float32, with W packed
// once into column panels: panel p holds columns [p·P, (p+1)·P) as [K][P] (zero-padded past N), so a step of
// k loads whole vectors of P outputs' weights and broadcasts one input float per row. The outputs accumulate
// in vectors along the columns, with no horizontal sums (at K = 256 those cost the small-batch kernel a third
// of its time). Every output is the FMA chain over k in order, then + bias: the same bits whatever the rows,
// the tile or the thread. The packing costs a copy of the weights; the row decoder makes one for models that
// are small enough (see RowDecoder).
#pragma once

#include <cstdint>
#include <vector>

namespace ctm::model {

class PackedLinear {
 public:
  PackedLinear() = default;
  // w [N, K] row-major (several matrices stacked along N are one: pass their rows in order); bias [N] or
  // null.
  PackedLinear(const float* w, int64_t N, int64_t K, const float* bias = nullptr);
  // Rows stacked: [w0; w1; ...] with their biases (each may be null).
  PackedLinear(const std::vector<const float*>& ws, const std::vector<int64_t>& ns, int64_t K,
               const std::vector<const float*>& biases);

  int64_t rows() const { return N_; }  // N: outputs
  int64_t cols() const { return K_; }  // K: inputs
  int64_t bytes() const { return static_cast<int64_t>(panels_.size() + bias_.size()) * 4; }

  // y[M, ldy] (first N columns) = x[M, K] · Wᵀ + bias, split across ctm's workers.
  void apply(const float* x, int64_t M, float* y, int64_t ldy) const;

  // Whether the CPU has the instructions (AVX2+FMA).
  static bool supported();

 private:
  int64_t N_ = 0, K_ = 0, width_ = 0;  // width_: columns per panel (the build's tile)
  bool wide_ = false;                  // AVX-512 build
  std::vector<float> panels_;          // [ceil(N / width), K, width]
  std::vector<float> bias_;            // [N] or empty
};

}  // namespace ctm::model
