#include "ctm/model/small_batch_linear.hpp"

#include <algorithm>
#include <vector>

#include "ctm/core/cpu_features.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CTM_HAVE_AVX2_BUILD 1
#endif

namespace ctm::model {
namespace {

bool cpu_has_avx512() {
  return cpu_has_avx512f();
}
bool cpu_has_avx2() {
  return cpu_has_avx2_fma();
}

#ifdef CTM_HAVE_AVX2_BUILD
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

// The lane sums of four vectors: adjacent lanes pairwise (hadd), twice, then the two 128-bit halves.
inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

#define VEC __m256
#define VWIDTH 8
#define VZERO _mm256_setzero_ps
#define VLOAD _mm256_loadu_ps
#define VFMA _mm256_fmadd_ps
#define VREDUCE4 reduce4
#define TILE_ROWS 4  // 4 x 3 accumulators + 3 weight vectors + 1 input: the 16 AVX2 registers
#define TILE_COLS 3
#include "small_batch_linear_body.inc"

}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {

// Low half + high half. (Vector shuffles, not the cast/extract intrinsics, which GCC 12 implements with
// undefined vectors that -Wmaybe-uninitialized reports.)
inline __m256 fold(__m512 v) {
  const __m256 low = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 high = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm256_add_ps(low, high);
}

// The lane sums of four vectors: each folded to 256 bits, then as in the AVX2 build.
inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  return avx2::reduce4(fold(a), fold(b), fold(c), fold(d));
}

#define VEC __m512
#define VWIDTH 16
#define VZERO _mm512_setzero_ps
#define VLOAD _mm512_loadu_ps
#define VFMA _mm512_fmadd_ps
#define VREDUCE4 reduce4
#define TILE_ROWS 6  // 6 x 4 accumulators + 4 weight vectors + 1 input of the 32 AVX-512 registers
#define TILE_COLS 4
#include "small_batch_linear_body.inc"

}  // namespace avx512
#pragma GCC pop_options
#endif

}  // namespace

bool small_batch_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!cpu_has_avx2()) return false;
  if (!x.device().is_cpu() || !weight.device().is_cpu()) return false;
  if (x.scalar_type() != torch::kFloat32 || weight.scalar_type() != torch::kFloat32) return false;
  if (weight.dim() != 2 || !weight.is_contiguous() || x.dim() < 1) return false;
  const int64_t K = weight.size(1);
  if (x.size(-1) != K) return false;
  if (x.numel() / K > kSmallBatchMaxRows) return false;
  // Autograd must see a torch op when a gradient is wanted.
  if (torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad())) return false;
  return true;
}

namespace {

void run_small_batch(bool wide, const float* x, int64_t M, int64_t K, const LinearSegment* segs,
                     int64_t count, float* y, int64_t ldy) {
  CTM_CHECK(cpu_has_avx2(), "small_batch_linear: needs an AVX2+FMA CPU");
#ifdef CTM_HAVE_AVX2_BUILD
  // Contiguous ranges of whole tiles of weight rows over all the segments, at least ~64 KiB of weights each
  // (small products stay on one thread), several per worker and claimed dynamically: a worker that wakes late
  // takes fewer.
  const int64_t cols = wide ? 4 : 3;
  std::vector<int64_t> first_tile(count + 1, 0);  // segment s has tiles [first_tile[s], first_tile[s + 1])
  for (int64_t s = 0; s < count; ++s) first_tile[s + 1] = first_tile[s] + (segs[s].n + cols - 1) / cols;
  const int64_t tiles = first_tile[count], min_tiles = std::max<int64_t>(1, 16384 / K / cols);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(tiles / min_tiles, 8 * cpu_workers()));
  parallel_tasks(parts, [&](int64_t p) {
    const int64_t t0 = tiles * p / parts, t1 = tiles * (p + 1) / parts;
    for (int64_t s = 0; s < count; ++s) {
      const int64_t a = std::max(t0, first_tile[s]), b = std::min(t1, first_tile[s + 1]);
      if (a >= b) continue;
      const LinearSegment& g = segs[s];
      const int64_t n0 = (a - first_tile[s]) * cols, n1 = std::min(g.n, (b - first_tile[s]) * cols);
      if (wide)
        avx512::feature_range(x, M, K, g.w, g.bias, y + g.offset, ldy, n0, n1);
      else
        avx2::feature_range(x, M, K, g.w, g.bias, y + g.offset, ldy, n0, n1);
    }
  });
#else
  (void)wide, (void)x, (void)M, (void)K, (void)segs, (void)count, (void)y, (void)ldy;
#endif
}

}  // namespace

void small_batch_linear(const float* x, int64_t M, int64_t K, const float* w, int64_t N, const float* bias,
                        float* y) {
  const LinearSegment seg{w, N, bias, 0};
  run_small_batch(cpu_has_avx512(), x, M, K, &seg, 1, y, N);
}

void small_batch_linear_avx2(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                             const float* bias, float* y) {
  const LinearSegment seg{w, N, bias, 0};
  run_small_batch(false, x, M, K, &seg, 1, y, N);
}

void small_batch_linear_segments(const float* x, int64_t M, int64_t K, const LinearSegment* segs,
                                 int64_t count, float* y, int64_t ldy) {
  run_small_batch(cpu_has_avx512(), x, M, K, segs, count, y, ldy);
}

torch::Tensor apply_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (!small_batch_applies(x, weight) ||
      (bias.defined() && (bias.scalar_type() != torch::kFloat32 || !bias.device().is_cpu())))
    return torch::linear(x, weight, bias);
  const int64_t K = weight.size(1), N = weight.size(0), M = x.numel() / K;
  const auto xc = x.contiguous();
  const auto bc = bias.defined() ? bias.contiguous() : bias;
  auto out_sizes = x.sizes().vec();
  out_sizes.back() = N;
  auto y = torch::empty(out_sizes, x.options());
  small_batch_linear(xc.data_ptr<float>(), M, K, weight.data_ptr<float>(), N,
                     bc.defined() ? bc.data_ptr<float>() : nullptr, y.data_ptr<float>());
  return y;
}

}  // namespace ctm::model
