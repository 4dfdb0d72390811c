// What the CPU can run, for the kernels that carry builds for several instruction sets (the project itself is
// compiled for baseline x86-64). Checked once.
#pragma once

namespace ctm {

bool cpu_has_avx2_fma();         // AVX2 and FMA
bool cpu_has_avx512f();          // AVX-512 Foundation
bool cpu_has_avx512_bw_dq_vl();  // AVX-512 F, BW, DQ and VL (what Skylake-X kernels use)

}  // namespace ctm
