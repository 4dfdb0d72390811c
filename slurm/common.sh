# Sourced by every sbatch script: where ctm is, what to run it on, and the per-rank thread share.
# Override any of these with `sbatch --export=ALL,MODEL=...,DATASET=... slurm/<task>.sbatch`.
: "${CTM:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/ctm}"
: "${MODEL:=tiny}"                 # Meta-Llama-3-8B | Meta-Llama-3-70B | deepseek-math-7b-base | Qwen2.5-7B | Qwen2.5-32B | tiny
: "${DATASET:=ARITH}"              # GSM8K | MATH | ARITH
: "${OUTPUT_DIR:=$PWD}"            # root of data/, checkpoints/, output/
: "${CTM_MODELS:=$HOME/models}"    # folder of Hugging Face model folders, one per --model_name
: "${SEED:=42}"
: "${DEVICE:=cpu}"                 # cpu | cuda
export CTM_MODELS
# OpenBLAS and ctm's workers get the cores Slurm gave this rank; torch's own intra-op pool stays at 1 (ctm sets it).
export OPENBLAS_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
export CTM_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
COMMON_ARGS=(--model_name "$MODEL" --dataset_name "$DATASET" --output_dir "$OUTPUT_DIR" --seed "$SEED" --device "$DEVICE")
# Slurm sends SIGTERM before the time limit (--signal below): ctm saves progress and exits 143; resubmitting resumes.
run_ctm() { srun --kill-on-bad-exit=1 "$CTM" "$@" "${COMMON_ARGS[@]}"; }
