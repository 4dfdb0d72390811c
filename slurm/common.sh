# Sourced by every slurm/*.sbatch (which finds it through CTM_HOME): runs one ctm task as the job's ranks.
#
# Arguments after the script name reach ctm: `sbatch slurm/evaluation.sbatch --max_questions 8`.
# Environment (exported before sbatch, or `sbatch --export=ALL,NAME=value,...`); each sets a ctm option unless the
# arguments already give it:
#   MODEL, DATASET       --model_name, --dataset_name (default tiny and ARITH, unless the arguments have --config)
#   OUTPUT_DIR           --output_dir, root of data/, checkpoints/, output/ (ctm's default: the folder sbatch ran in)
#   LORA_PATH, MODEL_PATH, CDPO_DATA_PATH, SEED, T, SAMPLING_N   the ctm option of the same name
#   DEVICE               cpu | cuda (default: cuda when the job has GPUs, else cpu)
#   GPUS                 --gpus with cuda (default 0,...,n-1 for the n GPUs Slurm gave each node: one rank per GPU,
#                        rank r takes the GPU of its local rank; more ranks than GPUs on a node is an error)
#   CTM                  the ctm binary (default $CTM_HOME/build/ctm); CTM_MODELS is read by ctm itself
# Ranks start with `srun --mpi=pmix` (Debian's Open MPI: pmix works, pmi2 and none do not); each rank's OpenBLAS and
# ctm workers get SLURM_CPUS_PER_TASK threads.
#
# Preemption: the scripts ask for `--signal=B:TERM@<seconds>` (SIGTERM to this batch shell before the time limit)
# and `--requeue`. The shell passes SIGTERM on to every rank; ctm finishes its unit of
# work, writes its checkpoint and exits 143, and the shell then requeues the job (`scontrol requeue`): it starts
# again with the same job id, the same arguments and the same log (--open-mode=append), and ctm resumes. Any other
# failure (exit 1: bad input, 2: bad command line, 3: task not implemented) ends the job FAILED.

: "${CTM:=$CTM_HOME/build/ctm}"

say() { echo "[$(date +%H:%M:%S)] ctm-slurm: $*" >&2; }

# Every "--flag value" default whose flag is not among the arguments already is appended to ARGS.
has_flag() { local a; for a in "${ARGS[@]}"; do [[ $a == "$1" || $a == "$1="* ]] && return 0; done; return 1; }
add_default() { [ -n "$2" ] && ! has_flag "$1" && ARGS+=("$1" "$2"); return 0; }

# The number of GPUs Slurm gave this node: 0 when none.
node_gpus() {
  local list=${CUDA_VISIBLE_DEVICES:-}
  [[ -n $list && $list != NoDevFiles ]] || { echo "${SLURM_GPUS_ON_NODE:-0}"; return; }
  tr ',' '\n' <<<"$list" | grep -c .
}

# The most ranks on one node (SLURM_TASKS_PER_NODE looks like "8(x4)" or "2,1").
max_ranks_per_node() {
  tr ',' '\n' <<<"${SLURM_TASKS_PER_NODE:-1}" | sed 's/(.*//' | sort -n | tail -1
}

# --device and --gpus: one rank per GPU.
add_device_defaults() {
  local gpus
  gpus=$(node_gpus)
  local device=${DEVICE:-$([ "$gpus" -gt 0 ] && echo cuda)}
  add_default --device "$device"
  [ "$device" = cuda ] || return 0
  local ranks
  ranks=$(max_ranks_per_node)
  if [ -z "${GPUS:-}" ] && ! has_flag --gpus; then
    [ "$gpus" -gt 0 ] || { say "DEVICE=cuda but Slurm gave this job no GPUs (sbatch --gpus-per-node=N)"; exit 2; }
    [ "$ranks" -le "$gpus" ] || { say "$ranks ranks on a node but $gpus GPUs: one rank per GPU (--ntasks-per-node=$gpus)"; exit 2; }
    GPUS=$(seq -s, 0 $((gpus - 1)))
  fi
  add_default --gpus "${GPUS:-}"
}

ctm_args() {  # ctm_args TASK ARGS...: sets ARGS to the task's arguments plus the defaults above
  ARGS=("${@:2}")
  local builtin=1
  has_flag --config && builtin=0  # the options file's model and data set must win over the built-in defaults
  add_default --model_name "${MODEL:-$([ $builtin = 1 ] && echo tiny)}"
  add_default --dataset_name "${DATASET:-$([ $builtin = 1 ] && echo ARITH)}"
  add_default --output_dir "${OUTPUT_DIR:-}"
  add_default --lora_path "${LORA_PATH:-}"
  add_default --model_path "${MODEL_PATH:-}"
  add_default --cdpo_data_path "${CDPO_DATA_PATH:-}"
  add_default --seed "${SEED:-}"
  add_default --t "${T:-}"
  add_default --sampling_n "${SAMPLING_N:-}"
  add_device_defaults
}

threads_per_rank() {
  [ -n "${SLURM_CPUS_PER_TASK:-}" ] || return 0
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
  export CTM_NUM_THREADS=${CTM_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
  export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK  # Slurm 22.05's srun no longer takes it from the job
}

# srun in the background so that this shell can take SIGTERM; returns srun's exit status. The signal goes on to the
# ranks through Slurm (scancel without --batch signals the job's steps, not this shell): srun itself would answer
# SIGTERM by killing them at once.
srun_forwarding_term() {
  srun --mpi=pmix --kill-on-bad-exit=1 "$@" &
  local pid=$!
  # scancel retries for half a minute while Slurm itself cancels or requeues the job (the ranks get SIGTERM from
  # Slurm then): give up after 5 s. Not in the background: left running, it could signal the job's next run.
  trap 'term_seen=1; say "SIGTERM: passing it on to the ranks"; timeout 5 scancel --signal=TERM "$SLURM_JOB_ID" || true' TERM
  local rc=0 status
  while :; do
    term_seen=0
    status=0
    wait "$pid" || status=$?
    [ "$status" = 127 ] && break  # srun's status was taken by the wait before the signal: rc has it
    rc=$status
    [ "$term_seen" = 1 ] || break  # else the trapped signal interrupted wait: wait again for srun's own status
  done
  trap - TERM
  return "$rc"
}

run_ctm() {  # run_ctm TASK ARGS...
  local task=$1
  ctm_args "$@"
  threads_per_rank
  [ -x "$CTM" ] || { say "no ctm binary at $CTM (build it, or set CTM)"; exit 2; }
  say "job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}), ${SLURM_NTASKS:-1} rank(s) x ${SLURM_CPUS_PER_TASK:-?} CPUs:" \
    "$(printf '%q ' "$CTM" "$task" "${ARGS[@]}")"
  local rc=0
  srun_forwarding_term "$CTM" "$task" "${ARGS[@]}" || rc=$?
  if [ "$rc" = 143 ]; then
    say "ctm saved its progress and stopped (exit 143): requeueing job $SLURM_JOB_ID to resume"
    scontrol requeue "$SLURM_JOB_ID" && exit 143
    say "scontrol requeue did not take (not allowed here, or being requeued already): the same command resumes"
  elif [ "$rc" != 0 ]; then
    say "ctm $task failed (exit $rc)"
  fi
  exit "$rc"
}
