# --dry_run: the inputs are checked as a run checks them, the plan is printed (items, ranks, outputs, memory
# per rank), and nothing is written, not even a folder; bad inputs fail as they would in the run, at once.
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1
cd "$TMP"
A=(--model_name tiny --dataset_name ARITH --output_dir "$TMP/out" --dry_run)
nothing_written() { [ ! -e "$TMP/out" ] || { echo "FAIL: a dry run wrote $(find "$TMP/out")"; fails=$((fails+1)); }; }

expect_exit 0 "$CTM" evaluation "${A[@]}" --max_questions 12 --max_new_tokens 100 --max_batch 8
expect_output '^ctm evaluation --dry_run: the inputs are valid; nothing was written$'
expect_output '^  items +12 questions of .*/test.jsonl x 1 sample, prompts up to [0-9]+ tokens, up to 100 new tokens each$'
expect_output '^  model +.*tiny: LlamaForCausalLM, 3546880 parameters \(14.19 MB float32 on cpu\)$'
expect_output '^  memory/rank +[0-9.]+ MB = weights 14.19 MB \+ KV cache \(at most\) [0-9.]+ MB$'
expect_output "^  outputs +$TMP/out/output/tiny/ARITH/base/result_0.jsonl, "
nothing_written

expect_exit 0 "$CTM" prepare_startup_data "${A[@]}" --max_questions 5 --sampling_n 4
expect_output '^  items +5 questions of .*/train.jsonl x 4 samples'
expect_output "^  outputs +$TMP/out/data/tiny/ARITH.samples.T1.00.n4.jsonl"
nothing_written

expect_exit 0 "$CTM" pipeline "${A[@]}" --stages prepare,eval_base
expect_output '^  prepare +runs: ctm prepare_startup_data '
expect_output '^  eval_base +runs: ctm evaluation --t 0 '
nothing_written
# --max_questions on the command line replaces the options file's (tiny-ARITH.ini has one), once.
expect_exit 0 "$CTM" pipeline "${A[@]}" --stages prepare --max_questions 7
expect_output '^  prepare +runs: ctm prepare_startup_data --sampling_n 64 --max_questions 7 --model_name'
nothing_written

# What the run would refuse, the dry run refuses, naming the file: a model folder without weights, an adapter
# folder that is not one, a missing DPO file.
mkdir broken && cp "$SRC/data/models/tiny/config.json" "$SRC/data/models/tiny/tokenizer.json" broken/
expect_exit 1 "$CTM" evaluation "${A[@]}" --model_path "$TMP/broken"
expect_output 'broken'
expect_exit 1 "$CTM" evaluation "${A[@]}" --lora_path "$TMP/broken"
expect_output "broken/adapter_config.json"
expect_exit 1 "$CTM" train_cdpo "${A[@]}" --loss dpo
expect_output "$TMP/out/data/tiny/ARITH.dpo_top_k1.T1.00.json"
# An output location that cannot be written: found by the dry run, and still nothing created.
touch "$TMP/file"
expect_exit 1 "$CTM" evaluation --model_name tiny --dataset_name ARITH --output_dir "$TMP/file/sub" --dry_run
expect_output "'$TMP/file' is a file, not a folder"
nothing_written
finish
