# The command line: help, task lookup, option errors, config files.
source "$(dirname "$0")/lib.bash"

expect_exit 0 "$CTM" --help
for t in prepare_startup_data train_ce calculate_ce_score train_cdpo evaluation sampling analyse merge synth pretrain \
         grade tokenize logprobs generate bench; do
  expect_output "^  $t "
done

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
