#!/usr/bin/env bash
# The GPU machine's check of ctm: build the CUDA variant against the machine's PyTorch (libtorch 2.x) with the
# Debian 12 libraries carried in .gpudeps/ (tools/gpu/make-gpudeps.sh), then prove the CUDA path:
#   - the CUDA unit tests (tests/engine/test_cuda.cpp: KV cache vs dense attention in bf16, KV-cache decode vs
#     full forwards on the tiny model, engine greedy tokens vs full-forward argmaxes);
#   - the NCCL backend: a single-rank NCCL communicator on GPU 0 (tests/dist/comm_test.cpp, Nccl.*);
#   - ctm evaluation (tiny, ARITH, 200 questions): accuracy on cuda vs cpu, wall time of each;
#   - ctm logprobs: cuda (bf16) vs cpu (float32) on 100 sequences;
#   - ctm pretrain: a few updates on cuda (the loss must fall), the same on cpu for comparison;
#   - ctm train_cdpo on cuda, one rank, 4 updates with the base whole and sharded (--fsdp on: the per-layer
#     gathers through a one-rank NCCL communicator and the recompute): the two adapters agree (bf16: 1e-2);
#   - the CPU test suite (ctest) against libtorch 2.x.
# Every step reports PASS or FAIL and the script goes on; the table comes last; the exit status is the number
# of failed steps (0: all passed). Logs go to $OUT (build.log, ctest.log, cuda.log, summary.txt).
#
# Run from the repo root on the GPU machine:   bash tools/gpu/check.sh
# Knobs (environment): OUT, BUILD (build-gpu), JOBS (16), BUDGET (seconds for the whole script, 420),
#   EVAL_Q (200), SKIP_CTEST=1, SKIP_BUILD=1 (reuse $BUILD).
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 99
T0=$(date +%s)
OUT=${OUT:-/tmp/ctm-gpu-out}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
BUDGET=${BUDGET:-420}
EVAL_Q=${EVAL_Q:-200}
W=$(mktemp -d /tmp/ctm-gpu.XXXXXX)
mkdir -p "$OUT"
CUDA_LOG=$OUT/cuda.log
: >"$CUDA_LOG"

ROWS=()
FAILED=0
row() {  # name status time detail
  ROWS+=("$(printf '%-26s %-4s %7s  %s' "$1" "$2" "$3" "$4")")
  [ "$2" = FAIL ] && FAILED=$((FAILED + 1))
  echo "== $1: $2 ($3) $4"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }
limit() { local l=$(($(left) - $1)); echo $((l < $2 ? $2 : l)); }  # seconds left less $1, at least $2
case "$BUILD" in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
# shellcheck source=tools/gpu/build.sh
source tools/gpu/build.sh  # py, ctm_gpu_detect, ctm_gpu_configure
CTM=$BUILD/ctm

# ---- 0. the machine --------------------------------------------------------------------------------------
echo "== machine"
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
echo "nproc: $(nproc)"
(. /etc/os-release && echo "os: $PRETTY_NAME")
echo "glibc: $(ldd --version 2>&1 | head -1)"
echo "gcc: $(g++ --version 2>&1 | head -1)"
echo "cmake: $(cmake --version 2>&1 | head -1); ninja $(ninja --version 2>&1)"
py -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI, "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'
ctm_gpu_detect

# ---- 1. the carried dependencies ----------------------------------------------------------------------------
t=$(now)
# shellcheck source=tools/gpu/gpudeps-env.sh
if source tools/gpu/gpudeps-env.sh; then
  row deps PASS "$(since "$t")" "fallback libs used:${GPUDEPS_FALLBACK_USED:- none}"
else
  row deps FAIL "$(since "$t")" "see output above"
fi

# ---- 2. configure and build -----------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  t=$(now)
  rm -rf "$BUILD"
  echo "== configure" | tee "$OUT/build.log"
  if ctm_gpu_configure "$BUILD" "$OUT/build.log"; then
    row configure PASS "$(since "$t")" "$(grep -m1 -o 'Found Torch: [^ ]*' "$OUT/build.log")"
  else
    grep -A12 'CMake Error' "$OUT/build.log" | head -60
    row configure FAIL "$(since "$t")" "CMake Error (build.log)"
  fi
  grep -E '^-- (Found (MPI_C|HDF5|Boost|GTest|nlohmann_json|Torch)|Checking for module|  Found lib|  Found ginac)' \
    "$OUT/build.log" | sed 's/^/   /'
  t=$(now)
  echo "== build" >>"$OUT/build.log"
  if timeout "$(limit 150 90)" cmake --build "$BUILD" -j "$JOBS" >>"$OUT/build.log" 2>&1; then
    row build PASS "$(since "$t")" "all targets, -j$JOBS"
  else
    grep -B2 -A10 -E 'error:|FAILED:' "$OUT/build.log" | head -80
    row build FAIL "$(since "$t")" "$(grep -c 'FAILED:' "$OUT/build.log") failed targets (build.log)"
    t=$(now)  # the ctm binary alone, so the CUDA checks still run
    if timeout 120 cmake --build "$BUILD" -j "$JOBS" --target ctm ctm_test_engine ctm_test_dist >>"$OUT/build.log" 2>&1; then
      row "build ctm, test_engine/dist" PASS "$(since "$t")" ""
    else
      row "build ctm, test_engine/dist" FAIL "$(since "$t")" ""
    fi
  fi
fi
if [ -x "$CTM" ]; then
  echo "ldd $CTM (our libraries and torch):"
  ldd "$CTM" | grep -E 'gpudeps|torch|c10|cuda|not found' | sed 's/^/   /'
  if ldd "$CTM" | grep -q 'not found'; then row "ldd ctm" FAIL "-" "unresolved libraries"; fi
  t=$(now)
  if "$CTM" --help >"$W/help.txt" 2>&1 && "$CTM" evaluation --help >/dev/null 2>&1; then
    row "ctm --help (MPI init)" PASS "$(since "$t")" "$(head -1 "$W/help.txt" | cut -c1-60)"
  else
    head -20 "$W/help.txt"
    row "ctm --help (MPI init)" FAIL "$(since "$t")" ""
  fi
fi

# ---- 3. CUDA unit tests and the NCCL backend on one GPU -------------------------------------------------------
gtest_step() {  # row name, test binary, gtest filter: PASS only when tests ran, none failed or was skipped
  local name=$1 bin=$2 filter=$3 out="$W/gtest-$(basename "$2").txt"
  t=$(now)
  if [ -x "$bin" ] && timeout 180 "$bin" --gtest_filter="$filter" >"$out" 2>&1; then st=PASS; else st=FAIL; fi
  { echo "==== $(basename "$bin") --gtest_filter=$filter"; cat "$out"; } >>"$CUDA_LOG"
  grep -E '^\[cuda\]|\[  (FAILED|SKIPPED) |Failure|Expected|Which is|error' "$out" | head -30
  grep -q '\[  SKIPPED \]' "$out" && st=FAIL        # skipped = CUDA not available to the test
  grep -q '^\[  PASSED  \] [1-9]' "$out" || st=FAIL # no test ran (e.g. built without NCCL)
  row "$name" "$st" "$(since "$t")" "$(grep -E '^\[  PASSED  \]|tests? ran' "$out" | tail -1)"
}
gtest_step "gtest Cuda.*" "$BUILD/ctm_test_engine" 'Cuda.*'
gtest_step "NCCL 1 rank on 1 GPU" "$BUILD/ctm_test_dist" 'Nccl.*'

# ---- 4. evaluation: cuda vs cpu -------------------------------------------------------------------------------
declare -A ACC SEC
for dev in cuda cpu; do
  t=$(now)
  timeout 200 "$CTM" evaluation --model_name tiny --dataset_name ARITH --max_questions "$EVAL_Q" --device "$dev" \
    --output_dir "$W/eval-$dev" >"$W/eval-$dev.out" 2>"$W/eval-$dev.err"
  rc=$?
  SEC[$dev]=$(since "$t")
  ACC[$dev]=$(grep -o 'Average Accuracy: [0-9.]*' "$W/eval-$dev.out" | awk '{print $3}')
  { echo "==== evaluation --device $dev (rc $rc, ${SEC[$dev]})"; cat "$W/eval-$dev.out"; tail -5 "$W/eval-$dev.err"; } >>"$CUDA_LOG"
  [ $rc -eq 0 ] || tail -5 "$W/eval-$dev.err"
done
same=$(py - "$W" <<'EOF' 2>/dev/null
import glob, json, sys
w = sys.argv[1]
def load(dev):
    f = glob.glob(f"{w}/eval-{dev}/output/**/result_*.jsonl", recursive=True)[0]
    return [json.loads(l) for l in open(f)]
a, b = load("cuda"), load("cpu")
same = sum(x["generation_result"] == y["generation_result"] for x, y in zip(a, b))
print(f"{same}/{len(a)} identical completions")
EOF
)
d=$(awk -v a="${ACC[cuda]:-x}" -v b="${ACC[cpu]:-x}" 'BEGIN { if (a == "x" || b == "x") print "x"; else { d = a - b; print (d < 0 ? -d : d) } }')
# One question of 200 is 0.5 points: allow two questions' difference under bf16.
tol=$(awk -v q="$EVAL_Q" 'BEGIN { print 200.0 / q + 1e-9 }')
if [ "$d" != x ] && awk -v d="$d" -v t="$tol" 'BEGIN { exit !(d <= t) }'; then st=PASS; else st=FAIL; fi
row "evaluation cuda vs cpu" "$st" "${SEC[cuda]}" "acc cuda ${ACC[cuda]:-?}% cpu ${ACC[cpu]:-?}% (cpu ${SEC[cpu]}); ${same:-?}"

# ---- 5. logprobs: cuda (bf16) vs cpu (float32) ------------------------------------------------------------------
t=$(now)
py - data/arith/test.jsonl "$W/lp_in.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for i, line in enumerate(f):
        if i == 100: break
        r = json.loads(line)
        out.write(json.dumps({"text": "Question: " + r["question"] + "\nAnswer: " + r["answer"].split("####")[0].strip()}) + "\n")
EOF
ok=1
for dev in cuda cpu; do
  timeout 120 "$CTM" logprobs --model_name tiny --device "$dev" --input "$W/lp_in.jsonl" --output "$W/lp_$dev.jsonl" \
    >>"$CUDA_LOG" 2>&1 || ok=0
done
lp=$(py - "$W/lp_cuda.jsonl" "$W/lp_cpu.jsonl" <<'EOF' 2>&1
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 100, (len(a), len(b))
n = mx = tot = 0.0
rel = 0.0
for x, y in zip(a, b):
    assert x["ids"] == y["ids"]
    d = [abs(p - q) for p, q in zip(x["logprobs"], y["logprobs"])]
    n += len(d); tot += sum(d); mx = max(mx, max(d))
    rel = max(rel, abs(sum(x["logprobs"]) - sum(y["logprobs"])) / abs(sum(y["logprobs"])))
print(f"mean|d| {tot / n:.4f} max|d| {mx:.3f} worst seq-sum rel {rel:.4f} over {int(n)} tokens")
sys.exit(0 if tot / n < 0.05 and rel < 0.02 else 1)
EOF
)
lprc=$?
[ $ok = 1 ] && [ $lprc = 0 ] && st=PASS || st=FAIL
echo "==== logprobs cuda vs cpu: $lp" >>"$CUDA_LOG"
row "logprobs cuda vs cpu" "$st" "$(since "$t")" "$(tail -1 <<<"$lp")"

# ---- 6. pretrain: a few updates on cuda (and cpu) ----------------------------------------------------------------
STEPS=40
for dev in cuda cpu; do
  t=$(now)
  timeout 150 "$CTM" pretrain --model_name tiny --dataset_name ARITH --device "$dev" --output_dir "$W/pt-$dev" \
    --out "$W/pt-$dev/model" --train_examples 2000 --valid_examples 100 --steps $STEPS --warmup_steps 5 \
    --log_every 5 --eval_every $STEPS --checkpoint_every 0 >"$W/pt-$dev.out" 2>"$W/pt-$dev.err"
  rc=$?
  SEC[pt-$dev]=$(since "$t")
  { echo "==== pretrain --device $dev (rc $rc, ${SEC[pt-$dev]})"; grep -E 'pretrain:' "$W/pt-$dev.err"; } >>"$CUDA_LOG"
  [ $rc -eq 0 ] || tail -5 "$W/pt-$dev.err"
  losses=$(grep -o 'step [0-9]*/[0-9]* epoch [0-9]* loss [0-9.na]*' "$W/pt-$dev.err" | awk '{print $6}' | tr '\n' ' ')
  first=$(awk '{print $1}' <<<"$losses")
  last=$(awk '{print $NF}' <<<"$losses")
  valid=$(grep -o 'validation loss [0-9.na]*' "$W/pt-$dev.err" | tail -1 | awk '{print $3}')
  ACC[pt-$dev]="loss ${first:-?} -> ${last:-?} (valid ${valid:-?})"
  if [ "$dev" = cuda ]; then
    if [ $rc -eq 0 ] && [ -n "$first" ] && awk -v a="$first" -v b="$last" 'BEGIN { exit !(b == b + 0 && b < 0.8 * a) }'; then
      st=PASS
    else
      st=FAIL
    fi
    echo "pretrain cuda losses (every 5 updates): $losses"
  fi
done
row "pretrain cuda ($STEPS upd.)" "$st" "${SEC[pt-cuda]}" "${ACC[pt-cuda]}; cpu ${ACC[pt-cpu]} in ${SEC[pt-cpu]}"

# ---- 6b. train_cdpo on cuda, one rank: the base whole and sharded (a one-rank NCCL communicator) -------------
t=$(now)
TD="$W/cdpo"
tcommon=(--model_name tiny --dataset_name ARITH --sampling_n 8 --device cuda --output_dir "$TD" --log_level warn)
ok=1
{
  timeout 120 "$CTM" prepare_startup_data "${tcommon[@]}" --max_questions 32 --max_new_tokens 160 &&
    timeout 60 "$CTM" train_ce "${tcommon[@]}" --max_steps 2 --batch_size 2 --valid_examples 1 &&
    timeout 60 "$CTM" calculate_ce_score "${tcommon[@]}"
} >>"$CUDA_LOG" 2>&1 || ok=0
for fsdp in off on; do
  [ $ok = 1 ] || break
  timeout 90 "$CTM" train_cdpo "${tcommon[@]}" --max_steps 4 --batch_size 1 --grad_accum 2 --fsdp "$fsdp" \
    --log_every 1 --out "$TD/cdpo-$fsdp" --log_level info >"$W/cdpo-$fsdp.log" 2>&1 || ok=0
  { echo "==== train_cdpo --device cuda --fsdp $fsdp"; grep -E 'base model|step [0-9]' "$W/cdpo-$fsdp.log"; } >>"$CUDA_LOG"
done
cdpo=$(py - "$TD" <<'EOF' 2>&1
import array, json, struct, sys
def load(path):
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        data = f.read()
    return {n: array.array("f", data[v["data_offsets"][0]:v["data_offsets"][1]])
            for n, v in header.items() if n != "__metadata__"}
a, b = (load(f"{sys.argv[1]}/cdpo-{x}/adapter_model.safetensors") for x in ("off", "on"))
assert a.keys() == b.keys() and all(max(map(abs, t)) > 0 for n, t in a.items() if "lora_B" in n)
worst = max(max(abs(x - y) for x, y in zip(a[n], b[n])) / max(map(abs, a[n])) for n in a)
print(f"adapters fsdp on vs off: {len(a)} tensors, max rel diff {worst:.2e}")
sys.exit(0 if worst < 1e-2 else 1)
EOF
)
cdrc=$?
echo "==== train_cdpo cuda: $cdpo" >>"$CUDA_LOG"
[ $ok = 1 ] && [ $cdrc = 0 ] && st=PASS || st=FAIL
per=$(grep -o '[0-9.]* s/update' "$W/cdpo-off.log" 2>/dev/null | tail -1)
row "train_cdpo cuda (4 upd.)" "$st" "$(since "$t")" "$(tail -1 <<<"$cdpo"); whole: ${per:-?}"

# ---- 7. the CPU test suite against libtorch 2.x ------------------------------------------------------------------
if [ "${SKIP_CTEST:-0}" != 1 ]; then
  t=$(now)
  lim=$(limit 10 30)
  timeout "$lim" ctest --test-dir "$BUILD" -j8 --output-on-failure --timeout 90 >"$OUT/ctest.log" 2>&1
  rc=$?
  sum=$(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)
  [ $rc -eq 124 ] && sum="stopped after ${lim}s; $sum"
  grep -A3 'The following tests FAILED' "$OUT/ctest.log" | head -20
  grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess|Not Run|Exception)' "$OUT/ctest.log" | head -20
  if [ $rc -eq 0 ] && grep -q 'tests passed' "$OUT/ctest.log"; then st=PASS; else st=FAIL; fi
  row "ctest -j8 (CPU suite)" "$st" "$(since "$t")" "$sum"
fi

# ---- the table -------------------------------------------------------------------------------------------------
{
  echo
  echo "ctm GPU check: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), torch $(py -c 'import torch; print(torch.__version__)'), $(($(date +%s) - T0)) s in all"
  printf '%-26s %-4s %7s  %s\n' step stat time detail
  printf '%s\n' "${ROWS[@]}"
  echo "failed steps: $FAILED"
} | tee "$OUT/summary.txt"
rm -rf "$W"
exit "$FAILED"
