#!/usr/bin/env bash
# The paper's pipeline as Slurm jobs: each stage starts when the stages it needs have succeeded (afterok); a stage
# whose dependency failed is cancelled instead of pending forever (--kill-on-invalid-dep=yes).
#
#   slurm/pipeline.sh [--dry-run] [--wait] [--stages LIST] [--sbatch "OPTIONS"] [--args KEY="ARGS"]...
#
#   MODEL=Meta-Llama-3-8B DATASET=GSM8K slurm/pipeline.sh --sbatch "--gpus-per-node=8"
#   slurm/pipeline.sh --wait --stages prepare,eval_base --sbatch "--ntasks=2 --cpus-per-task=1" \
#     --args all="--max_questions 8" --args prepare_startup_data="--sampling_n 4 --max_new_tokens 64"
#
#   --stages LIST    comma-separated stages to submit (default: all, in the order below); a stage waits for the
#                    stages of LIST it needs, directly or through stages left out (their outputs are used as they are)
#   --sbatch OPTS    sbatch options for every job (size: --ntasks=2 --cpus-per-task=1; --partition, --time, ...)
#   --args KEY=ARGS  ctm arguments for every stage of task KEY, or for all stages with KEY=all (repeatable)
#   --wait           wait for the jobs, print each one's state and the evaluation table; exit 1 unless all COMPLETED
#   --dry-run        print the sbatch commands instead of submitting them
#
# MODEL, DATASET and OUTPUT_DIR (default: this folder) come from the environment, as for every script (see
# slurm/common.sh), and name the adapters the evaluations read. Logs: $OUTPUT_DIR/logs/<stage>-<job id>.log.
set -euo pipefail
CTM_HOME=${CTM_HOME:-$(cd "$(dirname "$0")/.." && pwd)}
export CTM_HOME MODEL=${MODEL:-tiny} DATASET=${DATASET:-ARITH} OUTPUT_DIR=${OUTPUT_DIR:-$PWD}
CKPT=$OUTPUT_DIR/checkpoints/$MODEL/$DATASET

# One stage a line: name, ctm task, the stages it needs (comma-separated, - for none), its row in the evaluation
# table (- for none), then its own ctm arguments. A new stage is one more line.
STAGES="
prepare          prepare_startup_data  -                -           
train_ce         train_ce              prepare          -           
ce_score         calculate_ce_score    train_ce         -           
sft              train_sft             prepare          -           
dpo              train_cdpo            prepare          -           --loss dpo
rpo              train_cdpo            prepare          -           --loss rpo
cdpo             train_cdpo            ce_score         -           --loss cdpo --cdpo_loss sequence
cdpo_token       train_cdpo            ce_score         -           --loss cdpo --cdpo_loss token
eval_base        evaluation            -                Baseline    
eval_sft         evaluation            sft              SFT         --lora_path $CKPT/sft_chosen
eval_dpo         evaluation            dpo              DPO         --lora_path $CKPT/dpo
eval_rpo         evaluation            rpo              RPO         --lora_path $CKPT/rpo
eval_cdpo        evaluation            cdpo             cDPO        --lora_path $CKPT/cdpo
eval_cdpo_token  evaluation            cdpo_token       cDPO-token  --lora_path $CKPT/cdpo_token
"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

dry_run=0 wait=0 only="" sbatch_opts=()
declare -A task_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --wait) wait=1 ;;
    --stages) only=${2:?--stages needs a list}; shift ;;
    --sbatch) read -ra sbatch_opts <<<"${2:?--sbatch needs options}"; shift ;;
    --args) [[ ${2:-} == *=* ]] || usage; task_args[${2%%=*}]+=" ${2#*=}"; shift ;;
    -h | --help) usage ;;
    *) echo "pipeline.sh: unknown option $1" >&2; usage ;;
  esac
  shift
done

stage_names() { awk 'NF { print $1 }' <<<"$STAGES"; }
stage_field() { awk -v s="$1" -v f="$2" '$1 == s { print $f }' <<<"$STAGES"; }
stage_args() { awk -v s="$1" '$1 == s { $1 = $2 = $3 = $4 = ""; print }' <<<"$STAGES"; }

asked=()
IFS=, read -ra asked <<<"$only"
for s in "${asked[@]}"; do
  [ -n "$(stage_field "$s" 2)" ] || { echo "pipeline.sh: no stage $s (stages: $(stage_names | tr '\n' ' '))" >&2; exit 2; }
done
is_asked() { local s; for s in "${asked[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
selected=()  # in the table's order, so that a stage is submitted after those it needs
for s in $(stage_names); do [ -z "$only" ] || is_asked "$s" && selected+=("$s"); done
is_selected() { local s; for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# The selected stages a stage waits for: those it is listed after, or, for one not selected, what that one needs.
needs() {
  local d
  for d in $(tr ',' ' ' <<<"$(stage_field "$1" 3)"); do
    [ "$d" = - ] && continue
    if is_selected "$d"; then echo "$d"; else needs "$d"; fi
  done | sort -u
}

declare -A job=()
LOGS=$OUTPUT_DIR/logs
[ $dry_run = 1 ] || mkdir -p "$LOGS"

submit() {  # submit STAGE: prints nothing, sets job[STAGE]
  local stage=$1 task deps=() d
  task=$(stage_field "$stage" 2)
  for d in $(needs "$stage"); do deps+=("${job[$d]}"); done
  local cmd=(sbatch --parsable --job-name="ctm-$stage" --output="$LOGS/$stage-%j.log" --kill-on-invalid-dep=yes
    "${sbatch_opts[@]}")
  [ ${#deps[@]} = 0 ] || cmd+=(--dependency="afterok:$(IFS=:; echo "${deps[*]}")")
  # shellcheck disable=SC2206  # the stage's and the user's ctm arguments are words
  cmd+=("$CTM_HOME/slurm/$task.sbatch" $(stage_args "$stage") ${task_args[$task]:-} ${task_args[all]:-})
  if [ $dry_run = 1 ]; then
    job[$stage]="<$stage>"
    printf '%q' "${cmd[0]}"; printf ' %q' "${cmd[@]:1}"; echo
  else
    job[$stage]=$("${cmd[@]}")
    echo "$stage ($task): job ${job[$stage]}${deps[*]:+ after ${deps[*]}}"
  fi
}

for s in "${selected[@]}"; do submit "$s"; done
[ $dry_run = 0 ] && [ $wait = 1 ] || exit 0

# The state of a job: scontrol while slurmctld remembers it (MinJobAge), then sacct.
job_state() {
  local s
  s=$(scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2) || true
  [ -n "$s" ] || s=$(sacct -X -n -P -o State -j "$1" 2>/dev/null | head -1 | cut -d' ' -f1) || true
  echo "${s:-UNKNOWN}"
}
finished() { case $1 in PENDING | RUNNING | REQUEUED | CONFIGURING | COMPLETING | SUSPENDED | RESIZING | UNKNOWN) return 1 ;; esac; }

for s in "${selected[@]}"; do
  while ! finished "$(job_state "${job[$s]}")"; do sleep "${PIPELINE_POLL_SECONDS:-10}"; done
done

ok=1
echo
printf '%-16s %-8s %s\n' stage job state
for s in "${selected[@]}"; do
  state=$(job_state "${job[$s]}")
  [ "$state" = COMPLETED ] || ok=0
  printf '%-16s %-8s %s\n' "$s" "${job[$s]}" "$state"
done
echo
echo "$MODEL on $DATASET, test accuracy:"
for s in "${selected[@]}"; do
  row=$(stage_field "$s" 4)
  [ "$row" != - ] || continue
  acc=$(sed -n 's/^Average Accuracy: //p' "$LOGS/$s-${job[$s]}.log" 2>/dev/null | tail -1)
  echo "$row: ${acc:-(no result)}"
done
[ $ok = 1 ]
