# ctm tokenize and ctm bench tokenizer on the Llama-3 tokenizer of the fixtures: the ids of the first reference
# vectors, --add_special_tokens, errors naming the file and line.
source "$(dirname "$0")/lib.bash"

FIX="$SRC/tests/fixtures/text"
mkdir -p "$TMP/llama3"
xz -dc "$FIX/llama3/tokenizer.json.xz" > "$TMP/llama3/tokenizer.json"
cp "$FIX/llama3/tokenizer_config.json" "$TMP/llama3/"
xz -dc "$FIX/tokenizer_vectors.jsonl.xz" | grep '"tokenizer":"llama3"' | head -3 > "$TMP/vectors.jsonl"

# Input: the texts of the vectors; expected output: their ids.
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
rows = [json.loads(l) for l in open(tmp + "/vectors.jsonl")]
with open(tmp + "/in.jsonl", "w") as f:
    for r in rows: f.write(json.dumps({"text": r["text"]}) + "\n")
with open(tmp + "/want.jsonl", "w") as f:
    for r in rows: f.write(json.dumps({"ids": r["ids"]}, separators=(",", ":")) + "\n")
PY

expect_exit 0 "$CTM" tokenize --tokenizer_path "$TMP/llama3" --input "$TMP/in.jsonl" --output "$TMP/out.jsonl"
if ! diff -q "$TMP/out.jsonl" "$TMP/want.jsonl" > /dev/null; then
  echo "FAIL: ctm tokenize ids differ from the reference:"; diff "$TMP/out.jsonl" "$TMP/want.jsonl" | head -5
  fails=$((fails+1))
fi

# A tokenizer.json file works as well as its folder; --model_path is the default folder.
expect_exit 0 "$CTM" tokenize --tokenizer_path "$TMP/llama3/tokenizer.json" --input "$TMP/in.jsonl" --output "$TMP/out2.jsonl"
cmp -s "$TMP/out.jsonl" "$TMP/out2.jsonl" || { echo "FAIL: file and folder differ"; fails=$((fails+1)); }
expect_exit 0 "$CTM" tokenize --model_path "$TMP/llama3" --input "$TMP/in.jsonl" --output "$TMP/out3.jsonl"
cmp -s "$TMP/out.jsonl" "$TMP/out3.jsonl" || { echo "FAIL: --model_path differs"; fails=$((fails+1)); }

# Special tokens in the text are tokens; this Llama-3 file's post-processor adds no BOS.
printf '{"text": "<|begin_of_text|>Hi"}\n' > "$TMP/special.jsonl"
expect_exit 0 "$CTM" tokenize --tokenizer_path "$TMP/llama3" --input "$TMP/special.jsonl" --output "$TMP/special_out.jsonl" --add_special_tokens
grep -q '^{"ids":\[128000,13347\]}$' "$TMP/special_out.jsonl" || { echo "FAIL: special tokens:"; cat "$TMP/special_out.jsonl"; fails=$((fails+1)); }

# Bad input: the error names the file and the line.
printf '{"text": "ok"}\n{"txt": "typo"}\n' > "$TMP/bad.jsonl"
expect_exit 1 "$CTM" tokenize --tokenizer_path "$TMP/llama3" --input "$TMP/bad.jsonl" --output "$TMP/bad_out.jsonl"
expect_output "bad.jsonl:2"
[ ! -e "$TMP/bad_out.jsonl" ] || { echo "FAIL: a failed run left its output"; fails=$((fails+1)); }
expect_exit 1 "$CTM" tokenize --tokenizer_path "$TMP/nowhere" --input "$TMP/in.jsonl" --output "$TMP/x.jsonl"
expect_output "nowhere"

# The benchmark prints its table and MB/s last.
expect_exit 0 "$CTM" bench --what tokenizer --tokenizer_path "$TMP/llama3" --input "$TMP/in.jsonl" --passes 1
expect_output "^MB/s: [0-9.]+$"
[ "$(printf '%s\n' "$OUTPUT" | tail -1 | cut -c1-5)" = "MB/s:" ] || { echo "FAIL: MB/s is not last"; fails=$((fails+1)); }
expect_exit 0 "$CTM" bench tokenizer --tokenizer_path "$TMP/llama3" --input "$TMP/in.jsonl" --passes 1
expect_output "^MB/s: [0-9.]+$"
expect_exit 2 "$CTM" bench --what nothing
expect_output "unknown benchmark 'nothing'"

finish
