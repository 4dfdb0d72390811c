// OpenBLAS picks its matrix-product kernels from the CPU model it reads at load time. On a CPU it does not
// know (a virtual machine's "Intel Xeon Processor", a newer part) it falls back to Prescott, its SSE3
// kernels: on the development VM, an AVX-512 machine, libtorch's float32 products then ran at 23-31 GFLOP/s
// instead of 94-175. OpenBLAS reads OPENBLAS_CORETYPE only when it loads, before main, so the fix is to set
// it and start the program again.
#pragma once

#include <string>

namespace ctm {

// The core type to ask for, given the one OpenBLAS detected and what the CPU supports (`avx512`: AVX-512 F,
// BW, DQ and VL); empty when the detected one should stay (it is not the fallback, or nothing is better).
std::string better_openblas_core(const std::string& detected, bool avx2_fma, bool avx512);

// When OpenBLAS is loaded, OPENBLAS_CORETYPE is not set and better_openblas_core names a better core: sets
// OPENBLAS_CORETYPE and re-executes this program with the same arguments (it does not return then). Call it
// first in main, before MPI starts. A user's OPENBLAS_CORETYPE always wins.
void restart_with_better_openblas_kernels(char** argv);

}  // namespace ctm
