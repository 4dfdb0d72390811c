#include "ctm/core/openblas_kernels.hpp"

#include <dlfcn.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>

#include "ctm/core/cpu_features.hpp"

namespace ctm {

std::string better_openblas_core(const std::string& detected, bool avx2_fma, bool avx512) {
  if (::strcasecmp(detected.c_str(), "Prescott") != 0) return "";  // a real CPU model: OpenBLAS knows best
  if (avx512) return "SkylakeX";
  if (avx2_fma) return "Haswell";
  return "";
}

void restart_with_better_openblas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (core_name == nullptr) return;  // another BLAS (or none) behind libtorch
  const char* detected = core_name();
  const std::string better =
      better_openblas_core(detected ? detected : "", cpu_has_avx2_fma(), cpu_has_avx512_bw_dq_vl());
  if (better.empty()) return;
  ::setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OPENBLAS_CORETYPE");  // execv failed (no /proc): go on with the kernels OpenBLAS chose
}

}  // namespace ctm
