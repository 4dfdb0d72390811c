#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan, torch-free modules) in build-fuzz and runs
# each one from the committed corpus, one target at a time. docs/fuzzing.md describes the targets.
#
#   tools/fuzz/run.sh --runs 1000000          # the full measurement: 1M executions per target
#   tools/fuzz/run.sh --seconds 20            # CI: 20 s per target
#   tools/fuzz/run.sh --seconds 60 tokenizer  # some targets only
#   tools/fuzz/run.sh --merge [DIR...]        # minimise corpus/<target> + the scratch corpus (+ DIRs/<target>)
#                                             # into a new committed corpus/<target>
#
# New inputs go to a scratch corpus (build-fuzz/corpus/<target>, not committed); findings to
# build-fuzz/artifacts/<target>/ (crash-*, leak-*, timeout-*, oom-*), each with the sanitizer's report in
# build-fuzz/logs/<target>.log. Prints one line per target (executions, exec/s, coverage, corpus, findings,
# seconds, the slowest input's seconds) and exits 1 if any target found something.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ALL_TARGETS=(json safetensors model_config tokenizer extract)

# Per target: the largest input libFuzzer may generate, and the per-input time limit in seconds (extract
# compares in forked children with a 1 s deadline each, so it gets more).
declare -A MAX_LEN=([json]=4096 [safetensors]=4096 [model_config]=4096 [tokenizer]=16384 [extract]=1024)
declare -A TIMEOUT=([json]=10 [safetensors]=10 [model_config]=10 [tokenizer]=20 [extract]=30)
# extract forks (the graders' sandbox), and forking copies the page tables of everything ASan holds: a small
# quarantine and short allocation stacks double its speed, at the price of a shorter use-after-free window.
declare -A ASAN_EXTRA=([extract]=quarantine_size_mb=8:malloc_context_size=5)

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

mode="" limit="" merge_dirs=() targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) mode=runs limit="${2:?--runs needs a count}"; shift 2 ;;
    --seconds) mode=seconds limit="${2:?--seconds needs a duration}"; shift 2 ;;
    --merge) mode=merge; shift
      while [ $# -gt 0 ] && [ -d "$1" ]; do merge_dirs+=("$(cd "$1" && pwd)"); shift; done ;;
    -h|--help) usage ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ -n "$mode" ] || usage
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [ -n "${MAX_LEN[$t]:-}" ] || { echo "run.sh: unknown target '$t' (${ALL_TARGETS[*]})" >&2; exit 2; }
done

# ---- toolchain: clang with the libFuzzer and sanitizer runtimes, llvm-symbolizer for readable traces --------
toolchain_ok() {
  local probe
  probe=$(mktemp -d)
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
  command -v llvm-symbolizer > /dev/null &&
    clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" > /dev/null 2>&1
  local ok=$?
  rm -rf "$probe"
  return $ok
}
if ! toolchain_ok; then
  echo "installing clang, the libFuzzer/sanitizer runtimes and llvm-symbolizer"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev llvm
  toolchain_ok || { echo "run.sh: clang cannot build a libFuzzer target" >&2; exit 1; }
fi

# ---- build --------------------------------------------------------------------------------------------------
BUILD=$ROOT/build-fuzz
start=$(date +%s)
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -DCTM_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Debug > "$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]/#/ctm_fuzz_}" > "$BUILD/build.log" 2>&1 ||
  { tail -50 "$BUILD/build.log"; exit 1; }
echo "fuzz build: $(( $(date +%s) - start )) s"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:${LSAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

# ---- merge: minimise the corpus ------------------------------------------------------------------------------
if [ "$mode" = merge ]; then
  for t in "${targets[@]}"; do
    committed=$ROOT/tests/fuzz/corpus/$t
    new=$BUILD/merge/$t
    rm -rf "$new" && mkdir -p "$new" "$committed" "$BUILD/corpus/$t"
    # A greedy set cover of the edges (not of libFuzzer's hit-count features: with those, the committed
    # corpus has 5 to 8 times the files for the same edges); most hit counts come back within a 20 s run.
    extra=()
    for d in "${merge_dirs[@]}"; do [ -d "$d/$t" ] && extra+=("$d/$t"); done
    ASAN_OPTIONS="$ASAN_OPTIONS:${ASAN_EXTRA[$t]:-}" "$BUILD/tests/fuzz/ctm_fuzz_$t" -set_cover_merge=1 \
      -use_counters=0 -max_len="${MAX_LEN[$t]}" -timeout="${TIMEOUT[$t]}" "$new" "$committed" \
      "$BUILD/corpus/$t" "${extra[@]}" > "$BUILD/merge-$t.log" 2>&1 ||
      { tail -30 "$BUILD/merge-$t.log"; exit 1; }
    rm -rf "$committed" && mv "$new" "$committed"
    printf '%-13s %5d files %9d bytes\n' "$t" "$(ls "$committed" | wc -l)" \
      "$(find "$committed" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')"
  done
  exit 0
fi

# ---- run -----------------------------------------------------------------------------------------------------
if [ "$mode" = runs ]; then budget=(-runs="$limit"); else budget=(-max_total_time="$limit"); fi
mkdir -p "$BUILD/logs"
printf '%-13s %10s %8s %7s %7s %7s %8s %6s %7s\n' target executions exec/s cov ft corpus findings secs slowest
# Artifacts in a folder, but for slow-unit-* (they only mark the slowest input so far: see the "slowest" column).
count_findings() { ls "$1" | grep -vc '^slow-unit-' || true; }
failed=0
for t in "${targets[@]}"; do
  scratch=$BUILD/corpus/$t
  artifacts=$BUILD/artifacts/$t
  log=$BUILD/logs/$t.log
  mkdir -p "$scratch" "$artifacts" "$ROOT/tests/fuzz/corpus/$t"
  dict=()
  [ -f "$ROOT/tests/fuzz/$t.dict" ] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
  before=$(count_findings "$artifacts")
  t0=$(date +%s)
  rc=0
  ASAN_OPTIONS="$ASAN_OPTIONS:${ASAN_EXTRA[$t]:-}" "$BUILD/tests/fuzz/ctm_fuzz_$t" "${budget[@]}" \
    -max_len="${MAX_LEN[$t]}" -timeout="${TIMEOUT[$t]}" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${dict[@]}" "$scratch" "$ROOT/tests/fuzz/corpus/$t" > "$log" 2>&1 || rc=$?
  secs=$(( $(date +%s) - t0 ))
  # A crash in a forked child (extract's sandbox) leaves an artifact without stopping the fuzzer.
  findings=$(( $(count_findings "$artifacts") - before ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$last")
  slowest=$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log" | tail -1)
  printf '%-13s %10s %8s %7s %7s %7s %8s %6s %7s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$findings" "$secs" "${slowest:-?}"
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    failed=1
    echo "  $t: exit code $rc, $findings new artifact(s) in $artifacts; report in $log:" >&2
    grep -E -m5 'ERROR|runtime error|fuzz:|deadly signal|Timeout|out-of-memory' "$log" |
      sed 's/^/    /' >&2 || true
  fi
done
exit $failed
