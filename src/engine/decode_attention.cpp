// Two builds of one kernel body: AVX2+FMA (chosen at run time when the CPU has it) and portable. The project
// is compiled for baseline x86-64, so without this the inner products would run on SSE2 at a quarter of the
// speed.
#include "decode_attention.hpp"

#include <cmath>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CTM_HAVE_AVX2_BUILD 1
#endif

namespace ctm::engine::detail {

// ---- portable
// ----------------------------------------------------------------------------------------------------
namespace portable {

inline float dot(const float* a, const float* b, int64_t n) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) acc[j] += a[i + j] * b[i + j];
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

inline void axpy(float* y, float alpha, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

#define KERNEL_NAME run
#define DOT dot
#define AXPY axpy
#include "decode_attention_body.inc"
#undef KERNEL_NAME
#undef DOT
#undef AXPY

}  // namespace portable

// ---- AVX2 + FMA
// --------------------------------------------------------------------------------------------------
#ifdef CTM_HAVE_AVX2_BUILD
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

inline float dot(const float* a, const float* b, int64_t n) {
  if (n % 16 != 0) return portable::dot(a, b, n);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

inline void axpy(float* y, float alpha, const float* x, int64_t n) {
  if (n % 8 != 0) return portable::axpy(y, alpha, x, n);
  const __m256 va = _mm256_set1_ps(alpha);
  for (int64_t i = 0; i < n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
}

#define KERNEL_NAME run
#define DOT dot
#define AXPY axpy
#include "decode_attention_body.inc"
#undef KERNEL_NAME
#undef DOT
#undef AXPY

}  // namespace avx2
#pragma GCC pop_options
#endif

void decode_attention_portable(const DecodeAttentionArgs& args) {
  portable::run(args);
}

void decode_attention(const DecodeAttentionArgs& args) {
#ifdef CTM_HAVE_AVX2_BUILD
  static const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (has_avx2) return avx2::run(args);
#endif
  portable::run(args);
}

}  // namespace ctm::engine::detail
