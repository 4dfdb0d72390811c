// Three builds of one kernel body: AVX-512 and AVX2+FMA (chosen at run time by what the CPU has) and
// portable. The project is compiled for baseline x86-64, so without this the products would run on SSE2.
#include "decode_attention.hpp"

#include "ctm/core/cpu_features.hpp"

#include <cmath>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12's AVX-512 headers pass deliberately undefined vectors to the builtins behind max, round, convert and
// shift, which -Wmaybe-uninitialized then reports at every use (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#define CTM_HAVE_AVX2_BUILD 1
#endif

namespace ctm::engine::detail {

// ---- portable: one float a "vector"
// ---------------------------------------------------------------------------------
namespace portable {

#define VEC float
#define VMASK bool
#define VWIDTH 1
#define VZERO() 0.f
#define VSET1(x) (x)
#define VMASK_N(n) ((n) > 0)
#define VLOADM(p, m) ((m) ? *(p) : 0.f)
#define VLOAD(p) (*(p))
#define VSTOREM(p, v, m) \
  do {                   \
    if (m) *(p) = (v);   \
  } while (0)
#define VFMA(a, b, c) std::fma(a, b, c)
#define VMUL(a, b) ((a) * (b))
#define VADD(a, b) ((a) + (b))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define VROUND(x) std::nearbyint(x)
#define VPOW2(n) std::ldexp(1.f, static_cast<int>(n))
#define VREDUCE_ADD(v) (v)
#define VREDUCE_MAX(v) (v)
#define MR_S 4
#define NV_S 4
#define MR_O 4
#define NV_O 4
#include "decode_attention_body.inc"

}  // namespace portable

#ifdef CTM_HAVE_AVX2_BUILD
// ---- AVX2 + FMA
// ---------------------------------------------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

#include "ctm/core/simd_avx2.inc"

#define MR_S 4  // 4 x 3 accumulators + 3 key vectors + 1 broadcast: the 16 AVX2 registers
#define NV_S 3
#define MR_O 4
#define NV_O 3
#include "decode_attention_body.inc"

}  // namespace avx2
#pragma GCC pop_options

// ---- AVX-512
// ------------------------------------------------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {

#include "ctm/core/simd_avx512.inc"

#define MR_S 6  // 6 x 4 accumulators + 4 key vectors + 1 broadcast of the 32 AVX-512 registers
#define NV_S 4
#define MR_O 6
#define NV_O 4
#include "decode_attention_body.inc"

}  // namespace avx512
#pragma GCC pop_options
#endif

void attend_group_portable(const AttentionPool& pool, const AttentionSlot* slots, const int64_t* members,
                           int64_t count, int64_t kh) {
  portable::attend_group_impl(pool, slots, members, count, kh);
}

void attend_group(const AttentionPool& pool, const AttentionSlot* slots, const int64_t* members,
                  int64_t count, int64_t kh) {
#ifdef CTM_HAVE_AVX2_BUILD
  if (cpu_has_avx512f()) return avx512::attend_group_impl(pool, slots, members, count, kh);
  if (cpu_has_avx2_fma()) return avx2::attend_group_impl(pool, slots, members, count, kh);
#endif
  portable::attend_group_impl(pool, slots, members, count, kh);
}

}  // namespace ctm::engine::detail
