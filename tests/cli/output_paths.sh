# Output paths are checked before any work, only regular files are replaced (symlinks followed), a full disk
# is an error naming the file that leaves nothing half-written, and files that describe each other (results
# and summary, a model folder) are replaced as one unit.
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1
printf '{"ids": [5, 6, 7, 8]}\n{"ids": [9, 10, 11]}\n' > "$TMP/ids.jsonl"
# with_size_limit KB CMD...: CMD with writes past KB kilobytes failing (EFBIG), as on a full disk. PMIx keeps its
# shared-memory store in files too, so it uses its in-process store here.
with_size_limit() {
  local kb=$1; shift
  PMIX_MCA_gds=hash bash -c 'ulimit -f "$0"; trap "" XFSZ; exec "$@"' "$kb" "$@"
}
no_temporaries() {
  local left; left=$(find "$1" -name '*.tmp.*' 2>/dev/null)
  [ -z "$left" ] || { echo "FAIL: temporary files left behind: $left"; fails=$((fails+1)); }
}

# Checked before the model is even loaded: a folder, a FIFO, a device, an impossible folder.
mkdir -p "$TMP/existing_dir"
expect_exit 1 "$CTM" logprobs --model_name tiny --input "$TMP/ids.jsonl" --output "$TMP/existing_dir"
expect_output "cannot write '$TMP/existing_dir': it exists and is a folder"
mkfifo "$TMP/fifo"
expect_exit 1 "$CTM" logprobs --model_name tiny --input "$TMP/ids.jsonl" --output "$TMP/fifo"
expect_output "it exists and is a FIFO"
[ -p "$TMP/fifo" ] || { echo "FAIL: the FIFO was replaced"; fails=$((fails+1)); }
expect_exit 1 "$CTM" logprobs --model_name tiny --input "$TMP/ids.jsonl" --output /dev/null
expect_output "cannot write '/dev/null': it exists and is a device"
[ -c /dev/null ] || { echo "FAIL: /dev/null is no longer a device"; fails=$((fails+1)); }
expect_exit 1 "$CTM" evaluation --model_name tiny --dataset_name ARITH --output_dir /proc/ctm-test
expect_output "/proc/ctm-test"
if grep -q 'evaluation: ' <<<"$OUTPUT"; then echo "FAIL: evaluation started before checking its output"; fails=$((fails+1)); fi

# A symlink is followed: its target is replaced, the link stays a link.
echo old > "$TMP/real.jsonl"
ln -s real.jsonl "$TMP/link.jsonl"
expect_exit 0 "$CTM" logprobs --model_name tiny --input "$TMP/ids.jsonl" --output "$TMP/link.jsonl"
[ -L "$TMP/link.jsonl" ] || { echo "FAIL: the link was replaced by a file"; fails=$((fails+1)); }
grep -q logprobs "$TMP/real.jsonl" || { echo "FAIL: the link's target was not written"; fails=$((fails+1)); }

# A full disk (simulated with a file-size limit: writes past it fail with EFBIG) while pretrain writes its
# checkpoint: an error naming the file, exit 1, no temporary file left.
PT=(pretrain --model_name tiny --dataset_name ARITH --train_examples 300 --valid_examples 10 --steps 2
    --checkpoint_every 1 --eval_every 0 --hidden_size 32 --num_heads 2 --intermediate_size 64 --seq_len 512
    --max_position_embeddings 512
    --vocab_size 300 --output_dir "$TMP/pt")
expect_exit 1 with_size_limit 64 "$CTM" "${PT[@]}" --out "$TMP/pt/model"
expect_output "cannot write .*checkpoint"
no_temporaries "$TMP/pt"
# The model folder is replaced as a whole: a failure while writing the new one leaves the old one intact (the
# finished checkpoint makes the rerun go straight to writing the folder, which the size limit breaks).
rm -rf "$TMP/pt/checkpoints"
expect_exit 0 "$CTM" "${PT[@]}" --out "$TMP/pt/model" --log_level warn
echo "a file of the old folder" > "$TMP/pt/model/NOTES"
cp -r "$TMP/pt/model" "$TMP/pt/model_before"
expect_exit 1 with_size_limit 100 "$CTM" "${PT[@]}" --out "$TMP/pt/model"
expect_output "cannot write"
diff -r "$TMP/pt/model" "$TMP/pt/model_before" > /dev/null || { echo "FAIL: the old model folder was changed"; fails=$((fails+1)); }
no_temporaries "$TMP/pt"
expect_exit 0 "$CTM" "${PT[@]}" --out "$TMP/pt/model" --log_level warn
[ ! -e "$TMP/pt/model/NOTES" ] || { echo "FAIL: the folder was not replaced as a whole"; fails=$((fails+1)); }

# evaluation's results and summary are one unit: when the new results cannot be written, the old summary is
# gone too (never a summary that describes other results).
E=(evaluation --model_name tiny --dataset_name ARITH --max_new_tokens 40 --output_dir "$TMP/ev" --log_level warn)
expect_exit 0 "$CTM" "${E[@]}" --max_questions 2
D="$TMP/ev/output/tiny/ARITH/base"
expect_exit 1 with_size_limit 2 "$CTM" "${E[@]}" --max_questions 30
if [ -e "$D/summary_0.json" ]; then
  python3 - "$D" <<'PY' || fails=$((fails+1))
import json, sys
d = sys.argv[1]
s = json.load(open(f"{d}/summary_0.json"))
n = sum(1 for _ in open(f"{d}/result_0.jsonl"))
assert s["questions"] == n, ("a summary that does not describe its results", s["questions"], n)
PY
fi
no_temporaries "$TMP/ev"
finish
