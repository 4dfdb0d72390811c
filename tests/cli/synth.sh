# ctm synth: deterministic in --seed, writes both splits under --output_dir, prints statistics; the default
# command reproduces the committed data/arith files byte for byte.
source "$(dirname "$0")/lib.bash"

expect_exit 0 "$CTM" synth --dataset_name ARITH --train_size 200 --test_size 30 --seed 5 --output_dir "$TMP/a"
expect_output "^train: 200 problems"
expect_output "^test: 30 problems"
expect_output "operations: +add: [0-9]+ +subtract: [0-9]+ +multiply: [0-9]+ +divide: [0-9]+"
expect_output "answers: min [0-9]+, max [0-9]+"
expect_exit 0 "$CTM" synth --dataset_name ARITH --train_size 200 --test_size 30 --seed 5 --output_dir "$TMP/b"
expect_exit 0 "$CTM" synth --dataset_name ARITH --train_size 200 --test_size 30 --seed 6 --output_dir "$TMP/c"
for split in train test; do
  [ "$(wc -l < "$TMP/a/data/arith/$split.jsonl")" -eq "$([ $split = train ] && echo 200 || echo 30)" ] ||
    { echo "FAIL: $split.jsonl line count"; fails=$((fails+1)); }
  cmp -s "$TMP/a/data/arith/$split.jsonl" "$TMP/b/data/arith/$split.jsonl" ||
    { echo "FAIL: same seed, different $split.jsonl"; fails=$((fails+1)); }
  cmp -s "$TMP/a/data/arith/$split.jsonl" "$TMP/c/data/arith/$split.jsonl" &&
    { echo "FAIL: other seed, same $split.jsonl"; fails=$((fails+1)); }
done
ls "$TMP/a/data/arith" | grep -v -E '^(train|test)\.jsonl$' && { echo "FAIL: stray files"; fails=$((fails+1)); }

# The committed data set is what the README's command writes.
expect_exit 0 "$CTM" synth --dataset_name ARITH --output_dir "$TMP/d"
for split in train test; do
  cmp -s "$TMP/d/data/arith/$split.jsonl" "$SRC/data/arith/$split.jsonl" ||
    { echo "FAIL: default synth differs from data/arith/$split.jsonl"; fails=$((fails+1)); }
done

expect_exit 2 "$CTM" synth --dataset_name GSM8K --output_dir "$TMP/e"
expect_output "ARITH"
expect_exit 2 "$CTM" synth --dataset_name ARITH --train_size -1 --output_dir "$TMP/e"
finish
