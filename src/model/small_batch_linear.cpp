#include "ctm/model/small_batch_linear.hpp"

#include <algorithm>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CTM_HAVE_AVX2_BUILD 1
#endif

namespace ctm::model {
namespace {

bool cpu_has_avx512() {
#ifdef CTM_HAVE_AVX2_BUILD
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx2() {
#ifdef CTM_HAVE_AVX2_BUILD
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

#ifdef CTM_HAVE_AVX2_BUILD
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

#define VEC __m256
#define VWIDTH 8
#define VZERO _mm256_setzero_ps
#define VLOAD _mm256_loadu_ps
#define VFMA _mm256_fmadd_ps
#define VHSUM hsum
#define TILE_ROWS 4  // 4 x 3 accumulators + 3 weight vectors + 1 input: the 16 AVX2 registers
#define TILE_COLS 3
#include "small_batch_linear_body.inc"

}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {

inline float hsum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  const __m256 h = _mm256_add_ps(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

#define VEC __m512
#define VWIDTH 16
#define VZERO _mm512_setzero_ps
#define VLOAD _mm512_loadu_ps
#define VFMA _mm512_fmadd_ps
#define VHSUM hsum
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

void run_small_batch(bool wide, const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                     const float* bias, float* y) {
  CTM_CHECK(cpu_has_avx2(), "small_batch_linear: needs an AVX2+FMA CPU");
#ifdef CTM_HAVE_AVX2_BUILD
  // Contiguous feature ranges in whole tiles of weight rows, at least ~64 KiB of weights each (small products
  // stay on one thread), several per worker and claimed dynamically: a worker that wakes late takes fewer.
  const int64_t cols = wide ? 4 : 3;
  const int64_t tiles = (N + cols - 1) / cols, min_tiles = std::max<int64_t>(1, 16384 / K / cols);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(tiles / min_tiles, 8 * cpu_workers()));
  parallel_tasks(parts, [&](int64_t p) {
    const int64_t n0 = tiles * p / parts * cols, n1 = std::min(N, tiles * (p + 1) / parts * cols);
    if (wide)
      avx512::feature_range(x, M, K, w, N, bias, y, n0, n1);
    else
      avx2::feature_range(x, M, K, w, N, bias, y, n0, n1);
  });
#else
  (void)wide, (void)x, (void)M, (void)K, (void)w, (void)N, (void)bias, (void)y;
#endif
}

}  // namespace

void small_batch_linear(const float* x, int64_t M, int64_t K, const float* w, int64_t N, const float* bias,
                        float* y) {
  run_small_batch(cpu_has_avx512(), x, M, K, w, N, bias, y);
}

void small_batch_linear_avx2(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                             const float* bias, float* y) {
  run_small_batch(false, x, M, K, w, N, bias, y);
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
