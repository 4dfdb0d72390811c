# The command line: help, task lookup, option errors, config files.
source "$(dirname "$0")/lib.bash"

expect_exit 0 "$CTM" --help
for t in prepare_startup_data train_ce calculate_ce_score train_cdpo evaluation sampling analyse merge synth pretrain \
         grade tokenize logprobs generate bench; do
  expect_output "^  $t "
done

# OpenBLAS's fallback kernels for CPUs it does not know are replaced by a restart (docs/command-line.md): with
# OPENBLAS_VERBOSE=2 each load prints "Core: ...", so a restart shows a second line; a core the user set is kept.
cores=$(env -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 "$CTM" --help 2>&1 | sed -n 's/^Core: //p' | tr '\n' ' ')
if [ -n "$cores" ]; then  # OpenBLAS is the BLAS behind libtorch
  want="${cores%% *} "
  if [ "$want" = "Prescott " ]; then
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    if grep -qw avx512bw <<<"$flags" && grep -qw avx512dq <<<"$flags" && grep -qw avx512vl <<<"$flags"; then
      want="Prescott SkylakeX "
    elif grep -qw avx2 <<<"$flags" && grep -qw fma <<<"$flags"; then
      want="Prescott Haswell "
    fi
  fi
  [ "$cores" = "$want" ] || { echo "FAIL: OpenBLAS cores '$cores', want '$want'"; fails=$((fails+1)); }
  kept=$(OPENBLAS_CORETYPE=Nehalem OPENBLAS_VERBOSE=2 "$CTM" --help 2>&1 | sed -n 's/^Core: //p' | tr '\n' ' ')
  [ "$kept" = "Nehalem " ] || { echo "FAIL: OPENBLAS_CORETYPE=Nehalem gave cores '$kept'"; fails=$((fails+1)); }
fi

# Both spellings select the same task; --help of a task lists its options and the common ones.
expect_exit 0 "$CTM" grade --help
expect_output "--dataset_name"
expect_output "--max_questions"
expect_exit 0 "$CTM" --task_name grade --help
expect_output "ctm grade:"

# Errors: one line naming the culprit, exit 2.
expect_exit 2 "$CTM" no_such_task
expect_output "unknown task 'no_such_task'"
expect_lines 1
expect_exit 2 "$CTM" grade --no_such_option 1
expect_output "no_such_option"
expect_lines 1
expect_exit 2 "$CTM" grade --t not_a_number
expect_output "'--t'"
expect_lines 1
expect_exit 2 "$CTM" grade --task_name evaluation
expect_output "two task names"
expect_exit 2 "$CTM"

# A config file: unknown keys are errors; the command line beats the file.
printf 'no_such_key = 3\n' > "$TMP/bad.ini"
expect_exit 2 "$CTM" grade --config "$TMP/bad.ini"
expect_output "no_such_key"
expect_exit 2 "$CTM" grade --config "$TMP/missing.ini"
expect_output "missing.ini"

# The command line beats the file: the file's bad log level is an error unless the command line overrides it.
printf 'log_level = bogus\n' > "$TMP/level.ini"
expect_exit 2 "$CTM" analyse --config "$TMP/level.ini"
expect_output "log_level"
expect_exit 2 "$CTM" analyse --config "$TMP/level.ini" --log_level info
expect_output "analyse needs --rollouts FILE"

finish
