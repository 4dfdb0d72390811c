# shellcheck shell=bash
# Source this (bash) from the repo root: points CMake, pkg-config, the dynamic loader and Open MPI at the
# Debian 12 packages carried in .gpudeps/ (made by tools/gpu/make-gpudeps.sh). Nothing is written outside
# .gpudeps/. Sets:
#   GPUDEPS_ROOT      .gpudeps/root (absolute): the unpacked packages; $GPUDEPS_ROOT/usr is their /usr
#   GPUDEPS_RUN       .gpudeps/run: generated here (rewritten .pc files and h5pcc, tool links, fallback links)
#   GPUDEPS_CMAKE_ARGS  array of -D options for `cmake -S . -B ...`; also pass
#                     -DCMAKE_PREFIX_PATH="<torch's cmake prefix>;$GPUDEPS_PREFIX_PATH"
#   PATH, LD_LIBRARY_PATH, PKG_CONFIG, PKG_CONFIG_PATH, PKG_CONFIG_LIBDIR, OPAL_PREFIX, OPAL_SYSCONFDIR,
#   PMIX_PREFIX (and PMIX_*DIR), OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM), OMPI_MCA_* (quiet, shared-memory transports)
# The fallback libraries (libcurl, libssl, zlib, libgmp, libudev, libmunge and what they need) are linked in
# only for sonames the machine's own loader cache lacks, so the image's newer copies win where it has them.
gpudeps_setup() {
  local top gd r usr lib run so p
  top=$(pwd -P)
  gd=$top/.gpudeps
  if [ ! -d "$gd/root/usr" ]; then
    if [ -f "$gd/gpudeps.tar.xz" ]; then
      tar -C "$gd" -xJf "$gd/gpudeps.tar.xz" || return 1
    else
      echo "gpudeps-env: no $gd/root and no $gd/gpudeps.tar.xz (run tools/gpu/make-gpudeps.sh here)" >&2
      return 1
    fi
  fi
  r=$gd/root
  usr=$r/usr
  lib=$usr/lib/x86_64-linux-gnu
  run=$gd/run
  rm -rf "$run" && mkdir -p "$run/bin" "$run/pkgconfig" "$run/fallback-lib" "$run/devlib" || return 1

  # Fallback libraries: only the sonames the loader cache does not resolve to an existing file.
  local ldc
  ldc=$( (/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null) | awk '$1 ~ /^lib/ && /x86-64/ {print $1, $NF}')
  GPUDEPS_FALLBACK_USED=""
  while read -r so; do
    [ -n "$so" ] || continue
    p=$(awk -v s="$so" '$1 == s {print $2; exit}' <<<"$ldc")
    if [ -z "$p" ] || [ ! -s "$p" ]; then
      ln -sf "$gd/fallback/$so" "$run/fallback-lib/$so"
      GPUDEPS_FALLBACK_USED="$GPUDEPS_FALLBACK_USED $so"
    fi
  done <"$gd/fallback/SONAMES"
  export GPUDEPS_FALLBACK_USED

  # Development links (libfoo.so) for the libraries HDF5's wrapper names with -l: ours, a fallback, or the
  # system's copy of the soname.
  local pair name soname target
  for pair in crypto:libcrypto.so.3 curl:libcurl.so.4 z:libz.so.1 sz:libsz.so.2; do
    name=${pair%%:*}
    soname=${pair#*:}
    if [ -e "$lib/$soname" ]; then
      target=$lib/$soname
    elif [ -e "$run/fallback-lib/$soname" ]; then
      target=$run/fallback-lib/$soname
    else
      target=$(awk -v s="$soname" '$1 == s {print $2; exit}' <<<"$ldc")
    fi
    [ -n "$target" ] && ln -sf "$target" "$run/devlib/lib$name.so"
  done

  # pkg-config: the carried pkgconf, reading only our .pc files, rewritten from prefix /usr to ours.
  for p in "$usr/share/pkgconfig"/*.pc "$lib/pkgconfig"/*.pc; do
    [ -e "$p" ] || continue
    sed -e "s#\\(=\\|-I\\|-L\\)/usr\\([/ ]\\|\$\\)#\\1$usr\\2#g" "$p" >"$run/pkgconfig/$(basename "$p")"
  done
  ln -sf "$usr/bin/pkgconf" "$run/bin/pkg-config"
  # MPI: wrappers under their plain names (opal_wrapper reads <name>-wrapper-data.txt); OPAL_PREFIX relocates.
  ln -sf "$usr/bin/opal_wrapper" "$run/bin/mpicc"
  ln -sf "$usr/bin/orterun" "$run/bin/mpiexec"
  ln -sf "$usr/bin/orterun" "$run/bin/mpirun"
  # HDF5's compiler wrapper, pointed at our prefix, our mpicc and the development links above; shared
  # libraries by default (the static ones are not carried).
  sed -e "s#^prefix=\"/usr\"#prefix=\"$usr\"#" -e "s#\"mpicc.openmpi\"#\"$run/bin/mpicc\"#g" \
    -e "s#^H5BLD_LDFLAGS=\" *\"#H5BLD_LDFLAGS=\" -L$run/devlib \"#" \
    -e 's#^STATIC_AVAILABLE="yes"#STATIC_AVAILABLE="no"#' \
    "$usr/bin/h5pcc.openmpi" >"$run/bin/h5pcc"
  chmod +x "$run/bin/h5pcc"

  export GPUDEPS_ROOT=$r GPUDEPS_RUN=$run
  export PATH=$run/bin:$usr/bin:$PATH
  export LD_LIBRARY_PATH=$lib:$lib/pmix2/lib:$lib/openmpi/lib:$run/fallback-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PKG_CONFIG=$run/bin/pkg-config PKG_CONFIG_PATH=$run/pkgconfig PKG_CONFIG_LIBDIR=$run/pkgconfig
  export OPAL_PREFIX=$usr OPAL_SYSCONFDIR=$r/etc/openmpi
  # PMIx (inside mpirun) was configured with absolute paths: each one is relocated by its own variable.
  export PMIX_PREFIX=$lib/pmix2 PMIX_LIBDIR=$lib/pmix2/lib PMIX_PKGLIBDIR=$lib/pmix2/lib/pmix \
    PMIX_DATAROOTDIR=$lib/pmix2/share PMIX_DATADIR=$lib/pmix2/share PMIX_PKGDATADIR=$lib/pmix2/share/pmix
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_mca_base_component_show_load_errors=0
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
  export OMPI_MCA_rmaps_base_oversubscribe=1
  # shellcheck disable=SC2034  # used by whoever sources this file
  GPUDEPS_PREFIX_PATH=$usr
  # shellcheck disable=SC2034
  GPUDEPS_CMAKE_ARGS=(
    -DPKG_CONFIG_EXECUTABLE="$run/bin/pkg-config"
    -DBoost_ROOT="$usr" -DBoost_DIR="$lib/cmake/Boost-1.74.0" -DBoost_NO_SYSTEM_PATHS=ON
    -Dspdlog_DIR="$lib/cmake/spdlog" -Dfmt_DIR="$lib/cmake/fmt" -Dnlohmann_json_DIR="$usr/share/cmake/nlohmann_json"
    -DGTest_DIR="$lib/cmake/GTest"
    -DMPI_C_COMPILER="$run/bin/mpicc" -DMPIEXEC_EXECUTABLE="$run/bin/mpiexec"
    -DHDF5_C_COMPILER_EXECUTABLE="$run/bin/h5pcc" -DHDF5_PREFER_PARALLEL=ON
    -DCMAKE_LIBRARY_PATH="$run/devlib"
  )
}
gpudeps_setup
