#!/usr/bin/env bash
# Builds .gpudeps/ in the repo root: the Debian 12 (bookworm) packages that ctm needs to build and run on the
# lent GPU machine, whose image has CUDA, PyTorch, CMake and ninja but none of our other libraries and no
# network. Run here (Debian 12, apt reaches deb.debian.org), from the repo root; nothing is installed into /.
#
#   .gpudeps/gpudeps.tar.xz   what travels: the two folders below, packed (KEEP_UNPACKED=0 removes the folders)
#   .gpudeps/root/      the "core" packages, unpacked with dpkg -x and pruned (docs, man pages, static libraries
#                       other than gtest's, Fortran/OpenSHMEM/Java parts, Open MPI components whose libraries
#                       we do not carry, Boost headers that Boost.Program_options does not include)
#   .gpudeps/fallback/  common system libraries (libcurl, libssl, zlib, libgmp, libudev, libmunge, libpcre2-8 and
#                       libcurl's closure); tools/gpu/gpudeps-env.sh links only those whose soname the machine
#                       lacks
#
# The folder travels with `run ... carry: [".gpudeps"]`; keep it small (the whole tree that travels: 64 MiB).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
GD=.gpudeps
DEBS=${DEBS:-/tmp/gpudeps-debs}

core=(
  libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 nlohmann-json3-dev
  libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2
  libginac-dev libginac11 libcln-dev libcln6
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libhwloc15
  libevent-core-2.1-7 libevent-pthreads-2.1-7
  libhdf5-openmpi-dev libhdf5-openmpi-103-1 libhdf5-openmpi-hl-100 libaec0 libsz2
  libgtest-dev pkgconf-bin libpkgconf3
)
fallback=(
  libcurl4 libssl3 zlib1g libgmp10 libudev1 libmunge2 libzstd1 libbrotli1 libnghttp2-14 libidn2-0 libunistring2
  libpsl5 librtmp1 libssh2-1 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
  libldap-2.5-0 libsasl2-2 libsasl2-modules-db libdb5.3 libgnutls30 libhogweed6 libnettle8 libp11-kit0
  libtasn1-6 libffi8
)

if [ "${SKIP_DOWNLOAD:-0}" != 1 ]; then
  rm -rf "$DEBS" && mkdir -p "$DEBS/core" "$DEBS/fallback"
  (cd "$DEBS/core" && apt-get download "${core[@]}")
  (cd "$DEBS/fallback" && apt-get download "${fallback[@]}")
fi

rm -rf "$GD" && mkdir -p "$GD/root" "$GD/fallback"
grep -qx '/.gpudeps/' .git/info/exclude 2>/dev/null || echo '/.gpudeps/' >>.git/info/exclude
for f in "$DEBS"/core/*.deb; do dpkg -x "$f" "$GD/root"; done
tmp=$(mktemp -d)
for f in "$DEBS"/fallback/*.deb; do dpkg -x "$f" "$tmp"; done
# Fallback: only the shared libraries themselves (plus their soname links), flat.
find "$tmp" \( -type f -o -type l \) -name 'lib*.so.*' -path '*/lib/x86_64-linux-gnu/*' \
  -not -path '*/x86_64-linux-gnu/*/*' -exec cp -a {} "$GD/fallback/" \;
rm -rf "$tmp"
# The sonames tools/gpu/gpudeps-env.sh may link in (one a line).
for f in "$GD"/fallback/*; do
  [ -f "$f" ] && [ ! -L "$f" ] && objdump -p "$f" | awk '/SONAME/ {print $2}'
done | sort -u >"$GD/fallback/SONAMES"

R=$GD/root
L=$R/usr/lib/x86_64-linux-gnu
# Documentation and the like.
rm -rf "$R/usr/share/doc" "$R/usr/share/man" "$R/usr/share/info" "$R/usr/share/lintian" "$R/usr/share/doc-base" \
  "$R/usr/src" "$R/usr/share/openmpi/amca-param-sets"
# Static libraries, except GoogleTest (which ships only static ones).
find "$R" -name '*.a' -not -name 'libgtest*.a' -delete
# PCRE2: only the 8-bit library.
rm -f "$L"/libpcre2-16* "$L"/libpcre2-32* "$L"/libpcre2-posix* "$L"/pkgconfig/libpcre2-{16,32,posix}.pc
# HDF5: the C libraries only (the high-level one too: the h5pcc wrapper links it); no Fortran or C++.
rm -rf "$L/fortran" "$R"/usr/bin/h5pfc* "$R"/usr/bin/h5c++*
find "$L" -maxdepth 3 \( -name 'libhdf5_openmpi_cpp*' -o -name 'libhdf5_openmpi_hl_cpp*' -o -name 'libhdf5_openmpihl_*' \
  -o -name 'libhdf5_openmpi_fortran*' -o -name 'libhdf5_cpp*' -o -name 'libhdf5_hl_cpp*' -o -name 'libhdf5_fortran*' \
  -o -name 'libhdf5hl_fortran*' \) -delete
find "$R/usr/include/hdf5" -name '*.mod' -delete
# Open MPI: C bindings; no Fortran, C++, Java or OpenSHMEM, no components for transports we do not carry.
O=$L/openmpi
rm -f "$L"/liboshmem* "$L"/libmpi_mpifh* "$L"/libmpi_usempi* "$L"/libmpi_java* "$L"/libmpi_cxx* "$L"/libompitrace* \
  "$L"/libmca_common_ucx* "$L"/libmca_common_ofi* "$L"/libmca_common_verbs*
rm -f "$O"/lib/liboshmem* "$O"/lib/libmpi_mpifh* "$O"/lib/libmpi_usempi* "$O"/lib/libmpi_java* "$O"/lib/libmpi_cxx* \
  "$O"/lib/libompitrace* "$O"/lib/libmca_common_ucx* "$O"/lib/libmca_common_ofi* "$O"/lib/libmca_common_verbs* \
  "$O"/lib/*.mod "$O"/lib/mpi.jar
rm -rf "$O"/lib/openmpi3/mca_{atomic,memheap,scoll,spml,sshmem}_* "$O"/lib/openmpi3/*ucx* "$O"/lib/openmpi3/*ofi* \
  "$O"/lib/openmpi3/*openib* "$O"/lib/openmpi3/*psm* "$O"/lib/openmpi3/mca_reachable_netlink.so \
  "$O"/include/openshmem "$O"/include/*shmem* "$O"/include/mpif* "$O"/include/openmpi/oshmem \
  "$O"/include/openmpi/opal "$O"/include/openmpi/orte "$O"/include/openmpi/*config*.h "$O"/include/openmpi/opal_stdint.h
# mpi.h needs only openmpi/mpiext (through mpi-ext.h) and, without OMPI_SKIP_MPICXX, openmpi/ompi/mpi/cxx.
find "$O/include/openmpi/ompi" -mindepth 1 -maxdepth 1 -not -name mpi -exec rm -rf {} +
find "$O/include/openmpi/ompi/mpi" -mindepth 1 -maxdepth 1 -not -name cxx -exec rm -rf {} +
rm -f "$R"/usr/bin/{mpif77,mpif90,mpifort,mpiCC,mpic++,mpicxx}.openmpi "$R"/usr/bin/osh* "$R"/usr/bin/shmem* \
  "$R"/usr/bin/oshmem_info "$R"/usr/bin/mpijavac* "$R"/usr/bin/aggregate_profile "$R"/usr/bin/profile2mat
find "$R/usr/share/openmpi" -name '*-wrapper-data.txt' -not -name 'mpicc-wrapper-data.txt' \
  -not -name 'opalcc-wrapper-data.txt' -not -name 'ortecc-wrapper-data.txt' -delete 2>/dev/null || true
# Boost: keep the headers that <boost/program_options.hpp> includes (C++17 and C++20, with and without NDEBUG),
# plus all of boost/config and boost/detail's top level; CMake package files stay.
inc=$R/usr/include
keep=$(mktemp)
src=$(mktemp --suffix=.cpp)
echo '#include <boost/program_options.hpp>' >"$src"
for std in c++17 c++20; do
  for d in "" "-DNDEBUG -O2 -pthread"; do
    # shellcheck disable=SC2086
    # shellcheck disable=SC1003,SC2020  # spaces and backslashes of the make rule -> newlines
    g++ -std=$std $d -I"$inc" -M "$src" | tr ' \\' '\n\n' | grep "^$inc/boost/" | sed "s|^$inc/||"
  done
done >"$keep"
(cd "$inc" && find boost/config -type f && find boost/detail -maxdepth 1 -type f) >>"$keep"
sort -u -o "$keep" "$keep"
(cd "$inc" && find boost -type f | sort | comm -23 - "$keep" | xargs -r rm -f)
find "$inc/boost" -type d -empty -delete
rm -f "$keep" "$src"
# PCRE2's runtime library is on every system (grep and SELinux use it): make it a fallback too, so that the
# tools of the machine keep their own copy; the development link still points at ours for linking.
mv "$L"/libpcre2-8.so.0* "$GD/fallback/"
ln -sf ../../../../fallback/libpcre2-8.so.0 "$L/libpcre2-8.so"
echo libpcre2-8.so.0 >>"$GD/fallback/SONAMES"
sort -u -o "$GD/fallback/SONAMES" "$GD/fallback/SONAMES"
# Dangling links left by the pruning.
find "$R" "$GD/fallback" -xtype l -delete

# What travels is one xz tarball (about a third of the size); tools/gpu/gpudeps-env.sh unpacks it into
# .gpudeps/root and .gpudeps/fallback on the machine where they are missing (never into /).
tar -C "$GD" -cf - root fallback | xz -T2 -9 >"$GD/gpudeps.tar.xz"
if [ "${KEEP_UNPACKED:-1}" != 1 ]; then rm -rf "$GD/root" "$GD/fallback"; fi
du -sh --apparent-size "$GD/root" "$GD/fallback" "$GD/gpudeps.tar.xz"
