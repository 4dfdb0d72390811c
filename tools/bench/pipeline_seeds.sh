#!/usr/bin/env bash
# Table 1 over several seeds: runs `ctm pipeline` once per seed and prints each row's mean and spread.
#
#   tools/bench/pipeline_seeds.sh [BUILD_DIR] [WORK_DIR] [-- extra pipeline options]
#
# SEEDS (default "1 2 3") are the values of --seed: each seed draws its own startup samples, LoRA
# initialisations and so everything after them (the data order keeps the release's shuffle seed 33).
# MODEL/DATASET default to the embedded tiny/ARITH, whose options come from data/pipeline/tiny-ARITH.ini.
# Every seed runs in WORK_DIR/seed<S> and is skipped where its pipeline.json exists, so a stopped run goes
# on where it was. The table (mean, sample standard deviation, min and max of every row, and the minutes
# each seed took) is printed and written to WORK_DIR/table.md; WORK_DIR/seeds.json has every number.
set -euo pipefail
BUILD=$(realpath "${1:-build}")
WORK=$(realpath -m "${2:-/tmp/ctm_pipeline_seeds}")
shift $(($# < 2 ? $# : 2))
[ "${1:-}" = "--" ] && shift
CTM="$BUILD/ctm"
SEEDS=${SEEDS:-"1 2 3"}
MODEL=${MODEL:-tiny}
DATASET=${DATASET:-ARITH}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}
mkdir -p "$WORK"

for seed in $SEEDS; do
  dir="$WORK/seed$seed"
  report="$dir/output/$MODEL/$DATASET/pipeline.json"
  if [ -f "$report" ]; then
    echo "seed $seed: done earlier ($report)"
    continue
  fi
  mkdir -p "$dir"
  echo "seed $seed: running, log in $dir/pipeline.log"
  start=$(date +%s)
  "$CTM" pipeline --model_name "$MODEL" --dataset_name "$DATASET" --seed "$seed" --output_dir "$dir" "$@" \
    > "$dir/pipeline.log" 2>&1
  echo "seed $seed: $(($(date +%s) - start)) s"
done

python3 - "$WORK" "$MODEL" "$DATASET" $SEEDS <<'PY'
import json, statistics, sys
work, model, dataset, seeds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
reports = {s: json.load(open(f"{work}/seed{s}/output/{model}/{dataset}/pipeline.json")) for s in seeds}
rows = list(next(iter(reports.values()))["results"])
lines = [f"{model} on {dataset}, greedy test accuracy (%), seeds {', '.join(seeds)}", "",
         "| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | sd | min | max |",
         "| --- |" + " --- |" * (len(seeds) + 4)]
summary = {}
for row in rows:
    v = [reports[s]["results"][row] for s in seeds]
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    summary[row] = {"values": v, "mean": statistics.mean(v), "sd": sd, "min": min(v), "max": max(v)}
    lines.append(f"| {row} | " + " | ".join(f"{x:.2f}" for x in v) +
                 f" | {statistics.mean(v):.2f} | {sd:.2f} | {min(v):.2f} | {max(v):.2f} |")
minutes = [sum(st["seconds"] for st in reports[s]["stages"]) / 60 for s in seeds]
lines += ["", "stage minutes per seed: " + ", ".join(f"{m:.1f}" for m in minutes)]
base = summary.get("Baseline", {}).get("mean")
if base is not None:
    lines.append("mean gain over the baseline (points): " +
                 ", ".join(f"{r} {summary[r]['mean'] - base:+.2f}" for r in rows if r != "Baseline"))
open(f"{work}/table.md", "w").write("\n".join(lines) + "\n")
json.dump({"seeds": seeds, "rows": summary, "minutes": minutes}, open(f"{work}/seeds.json", "w"), indent=1)
print("\n".join(lines))
PY
