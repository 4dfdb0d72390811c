# The Slurm scripts without a cluster: they parse, every task has one, each finds common.sh the way that works from
# Slurm's spool copy, asks for preemption, and common.sh turns environment and arguments into the right ctm command.
# (tests/slurm/run.sh runs them on a real cluster.)
source "$(dirname "$0")/lib.bash"
for f in "$SRC"/slurm/*.sbatch "$SRC"/slurm/*.sh "$SRC"/tools/slurm/*.sh "$SRC"/tests/slurm/*.sh; do
  expect_exit 0 bash -n "$f"
done

# One script per task (train_sft has a script before ctm has the task).
PENDING_TASKS=" train_sft "
for task in prepare_startup_data train_ce calculate_ce_score train_sft train_cdpo evaluation sampling analyse merge \
  pretrain synth; do
  f=$SRC/slurm/$task.sbatch
  expect_exit 0 test -f "$f"
  expect_exit 0 grep -Eq "^run_ctm $task \"\\\$@\"$" "$f"
  [[ $PENDING_TASKS == *" $task "* ]] || expect_exit 0 "$CTM" "$task" --help
done
for f in "$SRC"/slurm/*.sbatch; do
  # Slurm runs a copy from its spool folder: never $0, but CTM_HOME or the path the job was submitted with.
  expect_exit 1 grep -q 'dirname "\$0"' "$f"
  expect_exit 0 grep -q '^: "${CTM_HOME:=$(scontrol show job "${SLURM_JOB_ID:-none}"' "$f"
  expect_exit 0 grep -q '^source "${CTM_HOME:?set CTM_HOME to the ctm repository}/slurm/common.sh"$' "$f"
  for opt in '--signal=B:TERM@[0-9]+$' '--requeue$' '--open-mode=append$' '--time=' '--cpus-per-task='; do
    expect_exit 0 grep -Eq "^#SBATCH $opt" "$f"
  done
  expect_exit 0 grep -Eq '^#   sbatch ' "$f"  # a usage example
done
expect_exit 1 grep -rEn '/(work|home|scratch|gpfs|lustre)/' "$SRC/slurm"  # no site paths

# common.sh: ctm_args sets ARGS from the task's arguments, the environment and the built-in defaults.
args_of() {  # args_of ENV... -- TASK ARGS...: the ctm arguments common.sh makes
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env -i PATH="$PATH" "${envs[@]}" bash -c 'CTM_HOME=$1; shift; source "$CTM_HOME/slurm/common.sh"; ctm_args "$@"
    echo "${ARGS[*]}"' _ "$SRC" "$@"
}
expect_exit 0 args_of -- evaluation --max_questions 8
expect_output '^--max_questions 8 --model_name tiny --dataset_name ARITH$'
expect_exit 0 args_of MODEL=Qwen2.5-7B DATASET=GSM8K SEED=7 LORA_PATH=ad -- evaluation --seed 3
expect_output '^--seed 3 --model_name Qwen2.5-7B --dataset_name GSM8K --lora_path ad$'  # the argument wins
expect_exit 0 args_of -- evaluation --config run.ini
expect_output '^--config run.ini$'  # the file's model and data set win over the built-in defaults
expect_exit 0 args_of -- evaluation --model_name=x
expect_output '^--model_name=x --dataset_name ARITH$'
expect_exit 0 args_of CUDA_VISIBLE_DEVICES=0,1,2,3 'SLURM_TASKS_PER_NODE=4(x2)' -- train_cdpo
expect_output '--device cuda --gpus 0,1,2,3$'  # the job has GPUs: one rank per GPU
expect_exit 2 args_of CUDA_VISIBLE_DEVICES=0,1 SLURM_TASKS_PER_NODE=4 -- train_cdpo
expect_output '4 ranks on a node but 2 GPUs'
expect_exit 2 args_of DEVICE=cuda -- train_cdpo
expect_output 'no GPUs'
expect_exit 0 args_of DEVICE=cuda GPUS=3 -- train_cdpo
expect_output '--device cuda --gpus 3$'

# run_ctm's preemption path, with stand-ins for srun (runs the rank), scancel (SIGTERM to the rank) and scontrol.
mkdir -p "$TMP/bin"
printf '#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@"\n' >"$TMP/bin/srun"
printf '#!/bin/bash\necho "scancel $*" >>"$TMP/calls"; kill -TERM "$(cat "$TMP/rank.pid")"\n' >"$TMP/bin/scancel"
printf '#!/bin/bash\necho "scontrol $*" >>"$TMP/calls"\n' >"$TMP/bin/scontrol"
# The rank (the "task" is its exit code): exits with it on SIGTERM, or 0 after 30 s.
printf '#!/bin/bash\necho $$ >"$TMP/rank.pid"; trap "exit $1" TERM; for i in $(seq 300); do sleep 0.1; done\n' \
  >"$TMP/bin/rank"
chmod +x "$TMP/bin/"*
batch_job() {  # batch_job EXIT_ON_TERM: a batch shell running the rank, sent SIGTERM once the rank runs
  rm -f "$TMP/calls" "$TMP/rank.pid"
  PATH="$TMP/bin:$PATH" TMP=$TMP CTM=$TMP/bin/rank SLURM_JOB_ID=42 bash -c \
    'CTM_HOME=$1; source "$CTM_HOME/slurm/common.sh"; run_ctm "$2"' _ "$SRC" "$1" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do [ -s "$TMP/rank.pid" ] && break; sleep 0.1; done
  kill -TERM $pid
  wait $pid
}
expect_exit 143 batch_job 143  # checkpoint written: the job requeues itself
expect_exit 0 grep -qx 'scancel --signal=TERM 42' "$TMP/calls"
expect_exit 0 grep -qx 'scontrol requeue 42' "$TMP/calls"
expect_exit 1 batch_job 1  # a real failure: not requeued
expect_exit 1 grep -q 'scontrol requeue' "$TMP/calls"

# pipeline.sh --dry-run: one sbatch a stage, in dependency order, each on a script that exists.
cd "$TMP"
expect_exit 0 "$SRC/slurm/pipeline.sh" --dry-run
n=$(printf '%s\n' "$OUTPUT" | grep -c '^sbatch ')
expect_exit 0 test "$n" -ge 10
for script in $(printf '%s\n' "$OUTPUT" | grep -o '[^ ]*/slurm/[a-z_]*\.sbatch'); do expect_exit 0 test -f "$script"; done
expect_exit 0 "$SRC/slurm/pipeline.sh" --dry-run --stages eval_cdpo,prepare --sbatch "--ntasks=2" --args all="--seed 5"
expect_lines 2
expect_output '^sbatch .*--job-name=ctm-prepare .*--ntasks=2 .*prepare_startup_data.sbatch --seed 5$'
expect_output "dependency=afterok:\\\\<prepare\\\\> .*evaluation.sbatch --lora_path $TMP/checkpoints/tiny/ARITH/cdpo --seed 5\$"
expect_exit 2 "$SRC/slurm/pipeline.sh" --dry-run --stages no_such_stage
expect_output 'no stage no_such_stage'
expect_exit 0 test ! -e "$TMP/logs"  # a dry run writes nothing
finish
