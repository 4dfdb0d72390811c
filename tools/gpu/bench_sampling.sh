#!/usr/bin/env bash
# ctm's engine on the GPU against Hugging Face generate(): builds the CUDA variant of ctm (target ctm only; or
# reuses $BUILD with SKIP_BUILD=1, e.g. after tools/gpu/check.sh), runs `ctm bench sampling --device cuda` (batch
# 1, 8, 64, 256 on a random Llama-3-8B-shaped model in bfloat16, with the card's bfloat16 matrix rate and copy
# bandwidth measured in the same run) and tools/gpu/hf_generate.py on the same shape, batches and lengths, and
# prints the two side by side. Output in $OUT (bench.txt, hf.jsonl, side_by_side.md).
#
# Run from the repo root on the GPU machine:   bash tools/gpu/bench_sampling.sh
# Knobs (environment): OUT, BUILD (build-gpu), JOBS (16), SKIP_BUILD=1, SHAPE (8b), BATCHES (1,8,64,256),
#   PROMPT (64), NEW (64).
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 99
OUT=${OUT:-/tmp/ctm-gpu-out}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
SHAPE=${SHAPE:-8b}
BATCHES=${BATCHES:-1,8,64,256}
PROMPT=${PROMPT:-64}
NEW=${NEW:-64}
mkdir -p "$OUT"
case "$BUILD" in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
# shellcheck source=tools/gpu/build.sh
source tools/gpu/build.sh
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  ctm_gpu_detect
  # shellcheck source=tools/gpu/gpudeps-env.sh
  source tools/gpu/gpudeps-env.sh || exit 1
  if ! { ctm_gpu_configure "$BUILD" "$OUT/bench-build.log" &&
    cmake --build "$BUILD" -j "$JOBS" --target ctm >>"$OUT/bench-build.log" 2>&1; }; then
    tail -30 "$OUT/bench-build.log"
    exit 1
  fi
else
  source tools/gpu/gpudeps-env.sh || exit 1
fi

cases="b${BATCHES//,/,b}"
echo "== ctm bench sampling --device cuda --shape $SHAPE --cases $cases"
timeout 300 "$BUILD/ctm" bench sampling --device cuda --shape "$SHAPE" --cases "$cases" --prompt_tokens "$PROMPT" \
  --new_tokens "$NEW" | tee "$OUT/bench.txt"
ctm_rc=$?
echo "== Hugging Face generate()"
timeout 300 env LD_LIBRARY_PATH="$SYS_LD_LIBRARY_PATH" python3 tools/gpu/hf_generate.py --shape "$SHAPE" \
  --batches "$BATCHES" --prompt_tokens "$PROMPT" --new_tokens "$NEW" | tee "$OUT/hf.jsonl"
hf_rc=$?

py - "$OUT/bench.txt" "$OUT/hf.jsonl" <<'PYEOF' | tee "$OUT/side_by_side.md"
import json, sys
rows = {}
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) >= 13 and cells[0].startswith("batch "):
        rows[int(cells[1])] = cells
hf = {r["batch"]: r for r in map(json.loads, filter(str.strip, open(sys.argv[2])))}
print("| batch | ctm tok/s | ctm decode tok/s | of bandwidth bound | of FLOP bound | HF generate tok/s | ctm / HF |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for b in sorted(set(rows) | set(hf)):
    c, h = rows.get(b), hf.get(b)
    ratio = f"{float(c[5]) / h['tok_s']:.2f}" if c and h else "-"
    print(f"| {b} | {c[5] if c else '-'} | {c[6] if c else '-'} | {c[11] if c else '-'} | {c[10] if c else '-'} | "
          f"{h['tok_s'] if h else '-'} | {ratio} |")
PYEOF
exit $((ctm_rc != 0 || hf_rc != 0))
