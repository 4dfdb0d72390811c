# Every Slurm script parses, sources common.sh and runs the ctm task its name says.
source "$(dirname "$0")/lib.bash"
for f in "$SRC"/slurm/*.sbatch "$SRC"/slurm/*.sh; do
  expect_exit 0 bash -n "$f"
done
for f in "$SRC"/slurm/*.sbatch; do
  task=$(basename "$f" .sbatch)
  [ "$task" = multinode ] && continue
  expect_exit 0 grep -Eq "^run_ctm $task( |$)" "$f"
  expect_exit 0 "$CTM" "$task" --help
done
finish
