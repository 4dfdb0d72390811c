# shellcheck shell=bash
# Source this from the repo root on the GPU machine (tools/gpu/check.sh and bench_sampling.sh do): finds what
# the CUDA build of ctm needs there and configures it against the machine's PyTorch (libtorch 2.x).
#   py                 the image's python3, run without the carried libraries on LD_LIBRARY_PATH
#   ctm_gpu_detect     sets and prints TORCH_PREFIX, NVCC, CUDA_HOME, NVTX3, NCCL_ROOT
#   ctm_gpu_configure BUILD LOG
#                      cmake -G Ninja, Release, CTM_CUDA=ON (and the NCCL backend when NCCL was found) into BUILD,
#                      output appended to LOG; source tools/gpu/gpudeps-env.sh first (GPUDEPS_* variables)
SYS_LD_LIBRARY_PATH=${SYS_LD_LIBRARY_PATH-${LD_LIBRARY_PATH:-}}
py() { LD_LIBRARY_PATH=$SYS_LD_LIBRARY_PATH python3 "$@"; }

ctm_gpu_detect() {
  local d
  TORCH_PREFIX=${TORCH_PREFIX:-$(py -c 'import torch; print(torch.utils.cmake_prefix_path)')}
  echo "torch cmake prefix: ${TORCH_PREFIX:-none}"
  NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
  CUDA_HOME=${CUDA_HOME:-${NVCC:+$(dirname "$(dirname "$(readlink -f "$NVCC")")")}}
  echo "nvcc: ${NVCC:-none} ($("${NVCC:-false}" --version 2>/dev/null | tail -1)); CUDA_HOME=${CUDA_HOME:-none}"
  # NVTX3 headers: torch's cuda.cmake falls back to CUDA::nvToolsExt (gone since CUDA 12.9) when it cannot find them.
  NVTX3=""
  for d in "${CUDA_HOME:-/nonexistent}/include" "${CUDA_HOME:-/nonexistent}/targets/x86_64-linux/include" \
    $(py -c 'import nvidia, os; print(" ".join(os.path.join(p, x, "include") for p in nvidia.__path__ for x in os.listdir(p)))' 2>/dev/null) \
    /usr/local/cuda/include /usr/include; do
    if [ -d "$d/nvtx3" ]; then NVTX3=$d; break; fi
  done
  echo "nvtx3: ${NVTX3:-not found}"
  # NCCL for the NCCL backend (CTM_CUDA=ON builds it): the one PyTorch ships (the nvidia-nccl wheel), else the
  # toolkit's or the system's. Without one the build goes on with CTM_WITH_NCCL=OFF and the NCCL step fails.
  NCCL_ROOT=${NCCL_ROOT:-$(py -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null)}
  if [ ! -f "${NCCL_ROOT:-/nonexistent}/include/nccl.h" ]; then
    NCCL_ROOT=""
    for d in "${CUDA_HOME:-/nonexistent}" /usr; do
      if [ -f "$d/include/nccl.h" ]; then NCCL_ROOT=$d; break; fi
    done
  fi
  echo "nccl: ${NCCL_ROOT:-not found}"
}

ctm_gpu_configure() {
  local build=$1 log=$2 cuda_args=(-DCMAKE_CUDA_ARCHITECTURES=90)
  [ -n "$NVCC" ] && cuda_args+=(-DCMAKE_CUDA_COMPILER="$NVCC")
  [ -n "$CUDA_HOME" ] && cuda_args+=(-DCUDAToolkit_ROOT="$CUDA_HOME" -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_HOME")
  [ -n "$NVTX3" ] && cuda_args+=(-DUSE_SYSTEM_NVTX=ON -Dnvtx3_dir="$NVTX3")
  if [ -n "$NCCL_ROOT" ]; then cuda_args+=(-DNCCL_ROOT="$NCCL_ROOT"); else cuda_args+=(-DCTM_WITH_NCCL=OFF); fi
  export TORCH_CUDA_ARCH_LIST=9.0
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCTM_CUDA=ON -DCCACHE_PROGRAM=OFF \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$GPUDEPS_PREFIX_PATH" "${GPUDEPS_CMAKE_ARGS[@]}" "${cuda_args[@]}" \
    >>"$log" 2>&1
}
