#!/usr/bin/env bash
# Installs everything ctm needs to build, test and run on Debian 12 (idempotent; run as root or with sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
packages=(
  build-essential cmake pkg-config ccache git xz-utils
  libtorch-dev               # libtorch 1.13 (CPU)
  libopenblas0-pthread       # fast BLAS for libtorch: without it every matrix product is ~25x slower
  libopenmpi-dev openmpi-bin # MPI
  libhdf5-openmpi-dev        # parallel HDF5 (C API)
  libboost-program-options-dev
  googletest libgtest-dev
  nlohmann-json3-dev         # JSON parser (well-kept, fuzzed)
  libspdlog-dev              # logging
  libpcre2-dev               # Unicode regexes with JIT for the tokenizer's pre-tokenizers
  libutf8proc-dev            # NFC/NFKC normalisation
  libginac-dev               # computer algebra for the math grader
  python3-h5py python3-numpy # tools/h5check.py (and its test) read the HDF5 score files with Debian's python3
  python3-matplotlib         # tools/plot_rollouts.py
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all dependencies are installed"
fi
