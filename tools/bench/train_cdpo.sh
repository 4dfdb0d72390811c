#!/usr/bin/env bash
# Benchmark: ctm train_cdpo on the embedded tiny model (ARITH) with 1 and 2 ranks, --fsdp off and on.
#
#   tools/bench/train_cdpo.sh [BUILD_DIR] [WORK_DIR]
#
# Builds its inputs first (prepare_startup_data on 64 questions, train_ce, calculate_ce_score: a few minutes;
# kept in WORK_DIR and reused by later runs). Every configuration trains the same S updates of a global
# batch of B pairs: one rank accumulates B micro-batches of one pair, two ranks B / 2 each. The wall and CPU
# seconds of each update come from the trainer's log (--log_every 1, rank 0). The table gives their medians
# over updates 2..S (the first warms up), the fastest update, the whole run's wall time (start, model load
# and the reference pass included), the parallel efficiency t(1 rank) / (2 t(2 ranks)) from the wall medians
# and from the CPU medians (what it would be with a core per rank and nothing else running: on a shared
# machine other jobs steal cores, so the load average is printed with each row), each rank's resident
# base-weight bytes (as the task logs them) and each rank's peak RSS and CPU seconds (/usr/bin/time).
set -euo pipefail
BUILD=$(realpath "${1:-build}")
WORK=$(realpath -m "${2:-/tmp/ctm_bench_train_cdpo}")
CTM="$BUILD/ctm"
B=${B:-4}
S=${S:-8}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--model_name tiny --dataset_name ARITH --sampling_n 8 --output_dir "$WORK")
mkdir -p "$WORK"

if [ ! -f "$WORK/data/tiny/ARITH.ce_scores.h5" ]; then
  echo "building the inputs in $WORK ..."
  "$CTM" prepare_startup_data "${common[@]}" --max_questions 64 --max_new_tokens 160 --log_level warn
  "$CTM" train_ce "${common[@]}" --max_steps 2 --batch_size 2 --valid_examples 2 --log_level warn
  "$CTM" calculate_ce_score "${common[@]}" --log_level warn
fi
pairs=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['prompt']))" \
  "$WORK/data/tiny/ARITH.dpo_top_k1.T1.00.n8.json")

# run NP FSDP: trains S updates; the log (each rank's /usr/bin/time line included) goes to $WORK/log.NP.FSDP
run() {
  local np=$1 fsdp=$2 out="$WORK/run.$1.$2"
  rm -rf "$out" "$out.state"
  local start end
  start=$(date +%s.%N)
  mpirun -np "$np" --oversubscribe /usr/bin/time -f "time: peak RSS %M kB, CPU %U + %S s" "$CTM" train_cdpo \
    "${common[@]}" --batch_size 1 --grad_accum $((B / np)) --max_steps "$S" --log_every 1 --checkpoint_every 0 \
    --fsdp "$fsdp" --out "$out" --log_level info > "$WORK/log.$np.$fsdp" 2>&1
  end=$(date +%s.%N)
  rm -rf "$out" "$out.state"
  echo "wall $start $end" >> "$WORK/log.$np.$fsdp"
}

# summary LOG [WALL1 CPU1]: a table row's numbers from a run's log (the one-rank medians: the efficiencies)
summary() {
  python3 - "$@" <<'PY'
import re, statistics, sys
log = open(sys.argv[1]).read()
steps = re.findall(r"^\[[0-9:]+\] (?:\[rank 0\] )?info: train_cdpo \w+: step \d+/\d+ .*?\(([0-9.]+) s/update, "
                   r"CPU ([0-9.]+) s/update", log, re.M)
per = [float(w) for w, _ in steps[1:]]
med, cpu = statistics.median(per), statistics.median(float(c) for _, c in steps[1:])
start, end = map(float, re.search(r"wall ([0-9.]+) ([0-9.]+)", log).groups())
eff = "-"
if len(sys.argv) > 2:  # wall-time efficiency, and the same from CPU time (each rank a core of its own)
    eff = f"{float(sys.argv[2]) / (2 * med):.0%} {float(sys.argv[3]) / (2 * cpu):.0%}"
res = sorted((int(r), int(b)) for b, r in re.findall(r"(\d+) B of its \d+ B of weights resident on rank (\d+)", log))
res += sorted((int(r), int(b)) for r, b in re.findall(r"whole on rank (\d+): (\d+) B of weights resident", log))
tm = re.findall(r"time: peak RSS (\d+) kB, CPU ([0-9.]+) \+ ([0-9.]+) s", log)
mem = " / ".join(f"{b / 1e6:.2f}" for _, b in res)
rss = " / ".join(f"{int(k) / 1e3:.0f}" for k, _, _ in tm)
cpu_run = " / ".join(f"{float(u) + float(s):.0f}" for _, u, s in tm)
print(f"{med:.3f} {min(per):.3f} {cpu:.3f} {end - start:.1f} | {eff} | {mem} | {rss} | {cpu_run}")
PY
}

echo "train_cdpo on tiny: $pairs pairs, $S updates of a global batch of $B pairs (micro-batch 1 pair)"
row() { printf "%-5s %-4s %8s %7s %8s %7s %-9s  %-17s %-11s %-8s %s\n" "$@"; }
row ranks fsdp "s/update" "(min)" "CPU s/u" "run (s)" "eff. w/c" "resident base MB" "peak RSS MB" "CPU (s)" load
for fsdp in off on; do
  ref=()
  for np in 1 2; do
    run "$np" "$fsdp"
    IFS='|' read -r times eff mem rss cpu <<<"$(summary "$WORK/log.$np.$fsdp" "${ref[@]}")"
    read -r med min cpu_u wall <<<"$times"
    [ "$np" = 1 ] && ref=("$med" "$cpu_u")
    row "$np" "$fsdp" "$med" "$min" "$cpu_u" "$wall" "$(echo $eff)" "$(echo $mem)" "$(echo $rss)" "$(echo $cpu)" \
      "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
