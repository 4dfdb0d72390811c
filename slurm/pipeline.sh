#!/usr/bin/env bash
# The paper's whole pipeline as Slurm jobs chained by dependencies: each starts when the one before it succeeded.
#   MODEL=Meta-Llama-3-8B DATASET=GSM8K slurm/pipeline.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
submit() { sbatch --parsable --export=ALL "$@"; }
prep=$(submit "$here/prepare_startup_data.sbatch")
ce=$(submit --dependency=afterok:$prep "$here/train_ce.sbatch")
score=$(submit --dependency=afterok:$ce "$here/calculate_ce_score.sbatch")
cdpo=$(submit --dependency=afterok:$score "$here/train_cdpo.sbatch")
evaluation=$(LORA_PATH="${OUTPUT_DIR:-$PWD}/checkpoints/${MODEL:-tiny}/${DATASET:-ARITH}/cdpo" \
  submit --dependency=afterok:$cdpo "$here/evaluation.sbatch")
echo "submitted: prepare_startup_data $prep -> train_ce $ce -> calculate_ce_score $score -> train_cdpo $cdpo -> evaluation $evaluation"
