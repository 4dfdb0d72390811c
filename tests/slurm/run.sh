#!/usr/bin/env bash
# The slurm/ scripts on a real one-node Slurm cluster (tools/slurm/local-cluster.sh, ports 6917-6918, state in a
# temporary folder), submitted from a folder outside the repository:
#  1. the whole pipeline in a reduced size, 2 ranks a job: every job COMPLETED, the table's six rows, every adapter and
#     the CE scores written, and the sampling stages' files equal to a direct one-rank run of the same commands;
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

# --- 1. The whole pipeline, reduced (the sizes of tests/cli/pipeline.sh), 2 ranks a job -------------------------------
# Every job COMPLETED, the table has its six rows, and what the sampling stages wrote equals a direct one-rank run.
Q=24 SAMPLES=8
START=(--sampling_n $SAMPLES)  # the startup data's run tag, for every task that makes or reads it
PIPELINE_ARGS=(--sbatch "--ntasks=2 --cpus-per-task=1"
  --args prepare_startup_data="${START[*]} --max_questions $Q --max_new_tokens 160"
  --args train_ce="${START[*]} --max_steps 6 --valid_examples 8 --warmup_steps 1"
  --args calculate_ce_score="${START[*]}"
  --args train_sft="${START[*]} --max_steps 3 --grad_accum 1"
  --args train_cdpo="${START[*]} --max_steps 6 --grad_accum 1"
  --args evaluation="--max_questions 12 --max_new_tokens 160")
OUTPUTS=(data/tiny/ARITH.samples.T1.00.n8.jsonl data/tiny/ARITH.sft.T1.00.n8.json data/tiny/ARITH.dpo_top_k1.T1.00.n8.json
  output/tiny/ARITH/base/result_0.jsonl output/tiny/ARITH/base/summary_0.json)
t0=$(date +%s)
rc=0
OUTPUT_DIR=$WORK/pipeline "$SRC/slurm/pipeline.sh" --wait "${PIPELINE_ARGS[@]}" >pipeline.txt || rc=$?
cat pipeline.txt
check "pipeline.sh --wait: every job COMPLETED" test $rc = 0
echo "pipeline: $(($(date +%s) - t0)) s"
ids=$(sed -n 's/^[a-z_]* ([a-z_]*): job \([0-9]*\).*/\1/p' pipeline.txt)
check "14 jobs submitted" test "$(wc -w <<<"$ids")" = 14
for id in $ids; do check "job $id COMPLETED (scontrol)" state_is "$id" COMPLETED; done
for row in Baseline SFT DPO RPO cDPO cDPO-token; do
  check "the table has $row" grep -Eq "^$row: [0-9]+\.[0-9]{2}%$" pipeline.txt
done
check "ce_scores.h5 reads with h5py" /usr/bin/python3 "$SRC/tools/h5check.py" pipeline/data/tiny/ARITH.ce_scores.h5
for a in sft/pos sft/neg sft_chosen dpo rpo cdpo cdpo_token; do
  check "adapter $a written" test -s "pipeline/checkpoints/tiny/ARITH/$a/adapter_model.safetensors"
done
"$CTM" prepare_startup_data --output_dir direct --model_name tiny --dataset_name ARITH --max_questions $Q \
  --max_new_tokens 160 "${START[@]}" --log_level warn >/dev/null
"$CTM" evaluation --output_dir direct --model_name tiny --dataset_name ARITH --max_questions 12 --max_new_tokens 160 \
  --log_level warn >/dev/null
for f in "${OUTPUTS[@]}"; do check "$f: 2 ranks under Slurm = 1 rank directly" same_file "pipeline/$f" "direct/$f"; done
check "every question evaluated" lines_are pipeline/output/tiny/ARITH/base/result_0.jsonl 12

# --- 2. A stage that fails: not requeued, and the one after it is cancelled -----------------------------------------
OUTPUT_DIR=$WORK/failing "$SRC/slurm/pipeline.sh" --wait --stages prepare,ce_score \
  --sbatch "--ntasks=1 --cpus-per-task=1" --args prepare_startup_data="--no_such_option" >failing.txt || true
cat failing.txt
ids=($(sed -n 's/^[a-z_]* ([a-z_]*): job \([0-9]*\).*/\1/p' failing.txt))
check "bad command line (exit 2): FAILED" state_is "${ids[0]}" FAILED
check "bad command line: not requeued" test "$(field "${ids[0]}" Restarts)" = 0
check "its dependant: CANCELLED, not pending" state_is "${ids[1]}" CANCELLED

# --- 3. Preemption and requeue of a training job ---------------------------------------------------------------------
# train_cdpo (DPO) on the pipeline's pairs, 2 ranks, preempted twice: SIGTERM to the batch shell as
# --signal=B:TERM@... sends it before the time limit, then `scontrol requeue` as an administrator would.
TRAIN=(--loss dpo "${START[@]}" --max_steps 10 --batch_size 1 --grad_accum 1 --checkpoint_every 1 --log_every 1)
train() { OUTPUT_DIR=$WORK/pipeline sbatch --parsable --ntasks=2 --cpus-per-task=1 --output="$1.log" \
  "$SRC/slurm/train_cdpo.sbatch" "${TRAIN[@]}" --out "$1"; }
step_at_least() { local s; s=$(sed -n 's/^ *"step": \([0-9]*\),/\1/p' "$1.state/trainer_state.json" 2>/dev/null | head -1)
  [ "${s:-0}" -ge "$2" ]; }
wait_step() { for _ in $(seq 1200); do step_at_least "$1" "$2" && return 0; sleep 0.2; done; return 1; }
t0=$(date +%s)
ref=$(train "$WORK/uninterrupted")
wait_job "$ref"
check "uninterrupted training COMPLETED" state_is "$ref" COMPLETED
job=$(train "$WORK/preempted")
check "training reached update 3" wait_step "$WORK/preempted" 3
scancel --batch --signal=TERM "$job"  # what --signal=B:TERM@... sends before the time limit
check "requeued by the script after SIGTERM" wait_step "$WORK/preempted" 6  # (resumed and went on)
scontrol requeue "$job"               # an administrator's (or a preempting job's) requeue
wait_job "$job"
echo "preemption: $(($(date +%s) - t0)) s for both runs"
check "preempted training COMPLETED" state_is "$job" COMPLETED
check "preempted training restarted twice" test "$(field "$job" Restarts)" = 2
check "the script requeued on exit 143" log_has "$WORK/preempted.log" "requeueing job $job"
check "ctm resumed from its checkpoint" log_has "$WORK/preempted.log" "resumed from"
check "same adapter as the uninterrupted run" same_file "$WORK/uninterrupted/adapter_model.safetensors" \
  "$WORK/preempted/adapter_model.safetensors"

echo "slurm: $(($(date +%s) - start)) s in all"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
