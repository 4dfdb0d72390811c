#include "ctm/model/packed_linear.hpp"

#include <algorithm>

#include "ctm/core/cpu_features.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12's AVX-512 headers pass deliberately undefined vectors to some builtins, which -Wmaybe-uninitialized
// then reports at every use (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#define CTM_HAVE_AVX2_BUILD 1
#endif

namespace ctm::model {
namespace {

#ifdef CTM_HAVE_AVX2_BUILD
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

#include "ctm/core/simd_avx2.inc"

#define TILE_MR 4  // 4 x 3 accumulators + 3 weight vectors + 1 broadcast: the 16 AVX2 registers
#define TILE_NV 3
#include "packed_linear_body.inc"

}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {

#include "ctm/core/simd_avx512.inc"

#define TILE_MR 6  // 6 x 4 accumulators + 4 weight vectors + 1 broadcast of the 32 AVX-512 registers
#define TILE_NV 4
#include "packed_linear_body.inc"

}  // namespace avx512
#pragma GCC pop_options
#endif

}  // namespace

bool PackedLinear::supported() {
  static const bool has = cpu_has_avx2_fma();
  return has;
}

PackedLinear::PackedLinear(const float* w, int64_t N, int64_t K, const float* bias)
    : PackedLinear(std::vector<const float*>{w}, std::vector<int64_t>{N}, K,
                   std::vector<const float*>{bias}) {}

PackedLinear::PackedLinear(const std::vector<const float*>& ws, const std::vector<int64_t>& ns, int64_t K,
                           const std::vector<const float*>& biases)
    : K_(K) {
  CTM_CHECK(supported(), "PackedLinear: needs an AVX2+FMA CPU");
  CTM_CHECK(ws.size() == ns.size() && ws.size() == biases.size() && K > 0, "PackedLinear: bad arguments");
  static const bool avx512 = cpu_has_avx512f();
  wide_ = avx512;
  width_ = wide_ ? 64 : 24;
  std::vector<const float*> row;  // every output row's weights, stacked
  bool any_bias = false;
  for (size_t i = 0; i < ws.size(); ++i) {
    for (int64_t n = 0; n < ns[i]; ++n) row.push_back(ws[i] + n * K);
    any_bias = any_bias || biases[i];
  }
  N_ = static_cast<int64_t>(row.size());
  const int64_t P = (N_ + width_ - 1) / width_;
  panels_.assign(P * K * width_, 0.f);
  for (int64_t n = 0; n < N_; ++n) {
    float* col = panels_.data() + (n / width_) * K * width_ + n % width_;
    for (int64_t k = 0; k < K; ++k) col[k * width_] = row[n][k];
  }
  if (any_bias) {
    for (size_t i = 0; i < ws.size(); ++i)
      for (int64_t n = 0; n < ns[i]; ++n) bias_.push_back(biases[i] ? biases[i][n] : 0.f);
  }
}

void PackedLinear::apply(const float* x, int64_t M, float* y, int64_t ldy) const {
#ifdef CTM_HAVE_AVX2_BUILD
  // Contiguous runs of panels, at least ~32 KiB of weights each, several per worker and claimed dynamically.
  const int64_t P = (N_ + width_ - 1) / width_, per = std::max<int64_t>(1, 8192 / (K_ * width_));
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(P / per, 8 * cpu_workers()));
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  parallel_tasks(parts, [&](int64_t p) {
    const int64_t p0 = P * p / parts, p1 = P * (p + 1) / parts;
    if (wide_)
      avx512::panels(x, M, K_, panels_.data(), bias, N_, y, ldy, p0, p1);
    else
      avx2::panels(x, M, K_, panels_.data(), bias, N_, y, ldy, p0, p1);
  });
#else
  (void)x, (void)M, (void)y, (void)ldy;
#endif
}

}  // namespace ctm::model
