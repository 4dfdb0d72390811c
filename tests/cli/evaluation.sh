# ctm evaluation and ctm generate on the fixture model (random weights): output files and their shape, the
# accuracy line, identical files for one and two ranks, per-line sampling fields, errors naming file:line.
source "$(dirname "$0")/lib.bash"
MODEL="$SRC/tests/fixtures/model/llama3-tiny-random"
export OPENBLAS_NUM_THREADS=1

expect_exit 0 "$CTM" evaluation --model_path "$MODEL" --model_name rand --dataset_name ARITH --max_questions 4 \
  --max_new_tokens 16 --output_dir "$TMP/one" --log_level warn
expect_output '^Average Accuracy: [0-9]+\.[0-9]{2}%$'
R="$TMP/one/output/rand/ARITH/base"
[ -f "$R/result_0.jsonl" ] && [ -f "$R/summary_0.json" ] || { echo "FAIL: no result_0.jsonl/summary_0.json in $R"; fails=$((fails+1)); }
[ "$(wc -l < "$R/result_0.jsonl")" = 4 ] || { echo "FAIL: want 4 result lines"; fails=$((fails+1)); }
grep -q '"id":"0","question":"[^"]*","answer":\[[^]]*\],"generation_result":\[' "$R/result_0.jsonl" \
  || { echo "FAIL: result line shape"; head -1 "$R/result_0.jsonl"; fails=$((fails+1)); }

# Sampling, one rank vs two ranks: the same bytes.
args=(evaluation --model_path "$MODEL" --model_name rand --dataset_name ARITH --max_questions 5 --t 0.8
      --sampling_n 3 --max_new_tokens 12 --log_level warn)
expect_exit 0 "$CTM" "${args[@]}" --output_dir "$TMP/np1"
if command -v mpirun > /dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  expect_exit 0 mpirun -np 2 --oversubscribe "$CTM" "${args[@]}" --output_dir "$TMP/np2"
  for f in result_0.8.n3.jsonl summary_0.8.n3.json; do
    cmp -s "$TMP/np1/output/rand/ARITH/base/$f" "$TMP/np2/output/rand/ARITH/base/$f" \
      || { echo "FAIL: $f differs between 1 and 2 ranks"; fails=$((fails+1)); }
  done
fi

# generate: text and id prompts, per-line n / max_new_tokens / stop.
cat > "$TMP/in.jsonl" <<'JSONL'
{"prompt": "Question: 2 + 3 =", "n": 2, "temperature": 1.0, "max_new_tokens": 5}
{"ids": [10, 20, 30], "max_new_tokens": 3, "tag": "kept"}
JSONL
expect_exit 0 "$CTM" generate --model_path "$MODEL" --input "$TMP/in.jsonl" --output "$TMP/out.jsonl" --log_level warn
[ "$(wc -l < "$TMP/out.jsonl")" = 2 ] || { echo "FAIL: want 2 output lines"; fails=$((fails+1)); }
head -1 "$TMP/out.jsonl" | grep -Eq '"completions":\[("[^"]*",?){2}\],"completion_ids":\[\[[0-9]+(,[0-9]+){4}\],\[[0-9]+(,[0-9]+){4}\]\]' \
  || { echo "FAIL: line 1 needs 2 completions of 5 ids"; head -1 "$TMP/out.jsonl"; fails=$((fails+1)); }
sed -n 2p "$TMP/out.jsonl" | grep -Eq '"tag":"kept".*"completion_ids":\[\[[0-9]+,[0-9]+,[0-9]+\]\]' \
  || { echo "FAIL: line 2 keeps its fields and has 3 ids"; sed -n 2p "$TMP/out.jsonl"; fails=$((fails+1)); }
printf '{"prompt": "ok"}\n{"n": 2}\n' > "$TMP/bad.jsonl"
expect_exit 1 "$CTM" generate --model_path "$MODEL" --input "$TMP/bad.jsonl" --output "$TMP/bad_out.jsonl"
expect_output 'bad\.jsonl:2: needs "prompt"'
finish
