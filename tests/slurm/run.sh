#!/usr/bin/env bash
# The slurm/ scripts on a real one-node Slurm cluster (tools/slurm/local-cluster.sh, ports 6917-6918, state in a
# temporary folder), submitted from a folder outside the repository:
#  1. the reduced pipeline of the stages that exist, 2 ranks each: every job COMPLETED, every output complete and
#     equal to a direct one-rank run of the same commands;
#  2. a failing stage: FAILED and not requeued, and the stage after it cancelled instead of pending forever;
#  3. preemption of a 2-rank training job, twice (SIGTERM to the batch shell as --signal=B:TERM sends it before the
#     time limit, then `scontrol requeue` as an administrator would): it requeues, resumes and ends COMPLETED with
#     the same model.safetensors, byte for byte, as an uninterrupted run.
# Needs root (it starts munged, slurmctld and slurmd), so .ci/run runs it, not ctest.
#   tests/slurm/run.sh [CTM_BINARY]     (default: build/ctm)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
CTM=$(realpath "${1:-$SRC/build/ctm}")
export CTM CTM_SLURM_DIR=${CTM_SLURM_DIR:-$(mktemp -d /tmp/ctm-slurm-test.XXXXXX)} CTM_SLURM_PORT=${CTM_SLURM_PORT:-6917}
export SLURM_CONF=$CTM_SLURM_DIR/slurm.conf PIPELINE_POLL_SECONDS=1
WORK=$(mktemp -d /tmp/ctm-slurm-work.XXXXXX)
cd "$WORK"
passed=0 failed=0
check() {  # check WHAT CMD...: runs CMD, counts and reports the result
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $what"; else failed=$((failed + 1)); echo "FAIL: $what"; fi
}
cleanup() {
  local status=$?
  "$SRC/tools/slurm/local-cluster.sh" stop || true
  if [ $failed -gt 0 ] || [ $status != 0 ]; then
    echo "kept for inspection: $WORK and $CTM_SLURM_DIR"
  else
    rm -rf "$WORK" "$CTM_SLURM_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT
field() { scontrol show job -o "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }  # field JOB NAME (JobState, Restarts, ...)
wait_job() {  # wait_job JOB: until it has finished (a requeued job is PENDING again, so it is waited for too)
  while :; do
    case $(field "$1" JobState) in PENDING | RUNNING | REQUEUED | COMPLETING | CONFIGURING) sleep 1 ;; *) return ;; esac
  done
}
state_is() { [ "$(field "$1" JobState)" = "$2" ] || { echo "  job $1: $(field "$1" JobState), want $2"; return 1; }; }
same_file() { cmp "$1" "$2" || { echo "  $1 and $2 differ"; return 1; }; }
lines_are() { [ "$(wc -l <"$1")" = "$2" ] || { echo "  $1 has $(wc -l <"$1") lines, want $2"; return 1; }; }
log_has() { grep -q -- "$2" "$1" || { echo "  $1 does not say '$2':"; cat "$1"; return 1; }; }

start=$(date +%s)
"$SRC/tools/slurm/local-cluster.sh" start >/dev/null
echo "cluster up in $(($(date +%s) - start)) s"

# --- 1. The pipeline, reduced: the stages that exist today, with the arguments each task takes ---------------------
N=8 SAMPLES=4
STAGES=prepare,eval_base  # a stage that lands is added here, its outputs below
PIPELINE_ARGS=(--sbatch "--ntasks=2 --cpus-per-task=1" --args all="--max_questions $N"
  --args prepare_startup_data="--sampling_n $SAMPLES --max_new_tokens 64" --args evaluation="--max_new_tokens 64")
# What each stage leaves, relative to the output folder; each file is compared with a direct one-rank run.
OUTPUTS=(data/tiny/ARITH.samples.T1.00.n4.jsonl data/tiny/ARITH.sft.T1.00.n4.json data/tiny/ARITH.dpo_top_k1.T1.00.n4.json
  output/tiny/ARITH/base/result_0.jsonl output/tiny/ARITH/base/summary_0.json)
t0=$(date +%s)
rc=0
OUTPUT_DIR=$WORK/pipeline "$SRC/slurm/pipeline.sh" --wait --stages "$STAGES" "${PIPELINE_ARGS[@]}" >pipeline.txt || rc=$?
cat pipeline.txt
check "pipeline.sh --wait: every job COMPLETED" test $rc = 0
echo "pipeline: $(($(date +%s) - t0)) s"
for id in $(sed -n 's/^[a-z_]* ([a-z_]*): job \([0-9]*\).*/\1/p' pipeline.txt); do
  check "job $id COMPLETED (scontrol)" state_is "$id" COMPLETED
done
check "the evaluation table has the baseline" grep -q '^Baseline: [0-9.]*%$' pipeline.txt
"$CTM" prepare_startup_data --output_dir direct --model_name tiny --dataset_name ARITH --max_questions $N \
  --max_new_tokens 64 --sampling_n $SAMPLES --log_level warn >/dev/null
"$CTM" evaluation --output_dir direct --model_name tiny --dataset_name ARITH --max_questions $N --max_new_tokens 64 \
  --log_level warn >/dev/null
for f in "${OUTPUTS[@]}"; do check "$f: 2 ranks under Slurm = 1 rank directly" same_file "pipeline/$f" "direct/$f"; done
check "every question evaluated" lines_are pipeline/output/tiny/ARITH/base/result_0.jsonl $N

# --- 2. A stage that fails: not requeued, and the one after it is cancelled -----------------------------------------
OUTPUT_DIR=$WORK/failing "$SRC/slurm/pipeline.sh" --wait --stages prepare,ce_score \
  --sbatch "--ntasks=1 --cpus-per-task=1" --args prepare_startup_data="--no_such_option" >failing.txt || true
cat failing.txt
ids=($(sed -n 's/^[a-z_]* ([a-z_]*): job \([0-9]*\).*/\1/p' failing.txt))
check "bad command line (exit 2): FAILED" state_is "${ids[0]}" FAILED
check "bad command line: not requeued" test "$(field "${ids[0]}" Restarts)" = 0
check "its dependant: CANCELLED, not pending" state_is "${ids[1]}" CANCELLED

# --- 3. Preemption and requeue of a training job ---------------------------------------------------------------------
TRAIN=(--train_examples 400 --valid_examples 20 --vocab_size 400 --hidden_size 64 --num_layers 2 --num_heads 2
  --intermediate_size 172 --seq_len 256 --batch_size 4 --steps 60 --warmup_steps 5 --eval_every 30
  --checkpoint_every 5 --log_every 10)
pretrain() { sbatch --parsable --ntasks=2 --cpus-per-task=1 --output="$1.log" "$SRC/slurm/pretrain.sbatch" "${TRAIN[@]}" \
  --output_dir "$1" --out "$1/model"; }
step_at_least() { local s; s=$(sed -n 's/^ *"step": \([0-9]*\),/\1/p' "$1/checkpoints/tiny/pretrain/trainer_state.json" 2>/dev/null | head -1)
  [ "${s:-0}" -ge "$2" ]; }
wait_step() { for _ in $(seq 600); do step_at_least "$1" "$2" && return 0; sleep 0.2; done; return 1; }
t0=$(date +%s)
ref=$(pretrain "$WORK/uninterrupted")
wait_job "$ref"
check "uninterrupted training COMPLETED" state_is "$ref" COMPLETED
job=$(pretrain "$WORK/preempted")
check "training reached step 10" wait_step "$WORK/preempted" 10
scancel --batch --signal=TERM "$job"  # what --signal=B:TERM@... sends before the time limit
check "requeued by the script after SIGTERM" wait_step "$WORK/preempted" 30  # (resumed and went on)
scontrol requeue "$job"               # an administrator's (or a preempting job's) requeue
wait_job "$job"
echo "preemption: $(($(date +%s) - t0)) s for both runs"
check "preempted training COMPLETED" state_is "$job" COMPLETED
check "preempted training restarted twice" test "$(field "$job" Restarts)" = 2
check "the script requeued on exit 143" log_has "$WORK/preempted.log" "requeueing job $job"
check "ctm resumed from its checkpoint" log_has "$WORK/preempted.log" "resumed from"
check "same model as the uninterrupted run" same_file "$WORK/uninterrupted/model/model.safetensors" \
  "$WORK/preempted/model/model.safetensors"

echo "slurm: $(($(date +%s) - start)) s in all"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
