# Hostile and malformed input: every case is a clear error naming the file, the record and what is wrong,
# found before any long work, with nothing left behind (no crash, no temporary file, no silent wrong output).
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1
TINY="$SRC/data/models/tiny"
no_temporaries() {  # no_temporaries DIR: nothing named *.tmp.* is left in DIR
  local left; left=$(find "$1" -name '*.tmp.*' 2>/dev/null)
  [ -z "$left" ] || { echo "FAIL: temporary files left behind: $left"; fails=$((fails+1)); }
}

# JSON nested 100,000 deep (valid JSON) used to overflow the stack: now file:line and exit 1, for every reader.
python3 -c "print('{\"completion\": \"x\", \"answer\": [\"1\"]}'); print('[' * 100000 + ']' * 100000)" > "$TMP/deep.jsonl"
for task in grade logprobs generate; do
  expect_exit 1 "$CTM" $task --model_name tiny --dataset_name ARITH --input "$TMP/deep.jsonl" --output "$TMP/o_$task.jsonl"
  expect_output "deep.jsonl:2: invalid JSON: nested deeper than 512 levels"
done
no_temporaries "$TMP"

# generate: every request field has a range, checked before anything is allocated; one integer rule.
printf '{"prompt": "Question: 1 + 1?\\nAnswer:", "n": 1000000000000}\n' > "$TMP/n_huge.jsonl"
expect_exit 1 "$CTM" generate --model_name tiny --input "$TMP/n_huge.jsonl" --output "$TMP/g.jsonl"
expect_output 'n_huge.jsonl:1: "n" must be an integer in \[1, 65536\] \(got 1000000000000\)'
printf '{"prompt": "x", "n": 1e30}\n' > "$TMP/n_float.jsonl"
expect_exit 1 "$CTM" generate --model_name tiny --input "$TMP/n_float.jsonl" --output "$TMP/g.jsonl"
expect_output '\(got 1e\+30\)'
printf '{"ids": [5, 6.5]}\n' > "$TMP/ids_frac.jsonl"
for task in generate logprobs; do
  expect_exit 1 "$CTM" $task --model_name tiny --input "$TMP/ids_frac.jsonl" --output "$TMP/g.jsonl"
  expect_output 'ids_frac.jsonl:1: every id in "ids" must be an integer in \[0, 746\] \(got 6.5\)'
done
printf '{"prompt": "x", "max_new_tokens": 5000}\n' > "$TMP/long.jsonl"
expect_exit 1 "$CTM" generate --model_name tiny --input "$TMP/long.jsonl" --output "$TMP/g.jsonl"
expect_output '"max_new_tokens" must be an integer in \[1, 1024\]'
printf '{"prompt": "x", "max_new_tokens": 1000}\n' > "$TMP/kv.jsonl"
expect_exit 1 "$CTM" generate --model_name tiny --input "$TMP/kv.jsonl" --output "$TMP/g.jsonl" --kv_budget_mb 1
expect_output 'more than the budget of 1048576 bytes \(--kv_budget_mb\)'
no_temporaries "$TMP"

# logprobs: sequences longer than the model's context, a 7M-token line: errors naming the line, up front.
python3 -c "import json; print(json.dumps({'ids': [5] * 3000}))" > "$TMP/too_long.jsonl"
expect_exit 1 "$CTM" logprobs --model_name tiny --input "$TMP/too_long.jsonl" --output "$TMP/lp.jsonl"
expect_output 'too_long.jsonl:1: 3000 ids; the model has 1024 positions'

# Model folders that make no sense: config values and NaN weights.
bad_model() {  # bad_model NAME PYTHON: a copy of tiny edited by PYTHON (cfg = config.json dict, d = folder)
  mkdir -p "$TMP/$1" && cp "$TINY"/* "$TMP/$1/"
  python3 - "$TMP/$1" <<PY
import json, struct, sys
d = sys.argv[1]
cfg = json.load(open(d + "/config.json"))
$2
json.dump(cfg, open(d + "/config.json", "w"))
PY
}
printf '{"ids": [5, 6, 7, 8]}\n' > "$TMP/ids.jsonl"
bad_model eps 'cfg["rms_norm_eps"] = -1'
expect_exit 1 "$CTM" logprobs --model_path "$TMP/eps" --input "$TMP/ids.jsonl" --output "$TMP/lp.jsonl"
expect_output 'eps/config.json: field "rms_norm_eps" must be in \(0, 1\), got -1'
bad_model theta 'cfg["rope_theta"] = 0'
expect_exit 1 "$CTM" logprobs --model_path "$TMP/theta" --input "$TMP/ids.jsonl" --output "$TMP/lp.jsonl"
expect_output 'field "rope_theta" must be a positive number, got 0'
bad_model huge 'cfg["hidden_size"] = 2 ** 40'
expect_exit 1 "$CTM" logprobs --model_path "$TMP/huge" --input "$TMP/ids.jsonl" --output "$TMP/lp.jsonl"
expect_output 'field "hidden_size" is 1099511627776, more than any model has'
bad_model bigger 'cfg["intermediate_size"] = 6880'
expect_exit 1 "$CTM" logprobs --model_path "$TMP/bigger" --input "$TMP/ids.jsonl" --output "$TMP/lp.jsonl"
expect_output 'bigger/config.json describes [0-9]+ parameters but the weights hold [0-9]+'
bad_model nan '
raw = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
b, e = head["model.norm.weight"]["data_offsets"]
data = bytearray(raw)
data[8 + n + b:8 + n + e] = struct.pack("<f", float("nan")) * ((e - b) // 4)
open(d + "/model.safetensors", "wb").write(bytes(data))'
expect_exit 1 "$CTM" logprobs --model_path "$TMP/nan" --input "$TMP/ids.jsonl" --output "$TMP/lp.jsonl"
expect_output 'ids.jsonl:1: the model gives a non-finite log-probability'
[ ! -e "$TMP/lp.jsonl" ] || { echo "FAIL: an output was written from NaN weights"; fails=$((fails+1)); }
# A tokenizer with ids beyond the model's vocabulary is refused at load.
bad_model vocab 'cfg["vocab_size"] = 700'
python3 - "$TMP/vocab" <<'PY'
import struct, json, sys
d = sys.argv[1]
raw = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
out, blobs, off = {}, [], 0
for name, info in head.items():
    if name == "__metadata__": out[name] = info; continue
    b, e = info["data_offsets"]
    blob = raw[8 + n + b:8 + n + e]
    if info["shape"][0] == 747:  # embedding and head: keep the first 700 rows
        blob = blob[:len(blob) * 700 // 747]; info["shape"][0] = 700
    info["data_offsets"] = [off, off + len(blob)]; off += len(blob); out[name] = info; blobs.append(blob)
h = json.dumps(out).encode(); h += b" " * (-len(h) % 8)
open(d + "/model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
expect_exit 1 "$CTM" evaluation --model_path "$TMP/vocab" --model_name tiny --dataset_name ARITH --max_questions 1 --output_dir "$TMP/ev"
expect_output "the tokenizer has ids up to 746 but the model's vocabulary is 700"

# The command line: ranges checked before anything is loaded.
expect_exit 2 "$CTM" evaluation --model_name tiny --dataset_name ARITH --max_questions -5
expect_output -- '--max_questions must be >= 1, or -1 for all \(got -5\)'
expect_exit 2 "$CTM" evaluation --model_name tiny --dataset_name ARITH --t nan
expect_output -- '--t must be a temperature in \[0, 100\] \(got nan\)'
expect_exit 2 "$CTM" pretrain --model_name tiny --steps -1 --out "$TMP/pt"
expect_output -- '--steps must be in \[0, '
expect_exit 2 "$CTM" logprobs --model_name tiny --input "$TMP/ids.jsonl" --output "$TMP/lp.jsonl" --batch_tokens 0
expect_output -- '--batch_tokens must be in \[1, '
mkdir -p "$TMP/a_folder"
expect_exit 1 "$CTM" grade --dataset_name ARITH --input "$TMP/a_folder" --output "$TMP/g.jsonl"
expect_output "cannot read '$TMP/a_folder': it is a folder, not a file"
# A --config file with a UTF-8 byte-order mark (as some editors write it).
printf '\xef\xbb\xbfdataset_name = ARITH\nmax_questions = 2\n' > "$TMP/bom.ini"
expect_exit 0 "$CTM" evaluation --model_name tiny --config "$TMP/bom.ini" --max_new_tokens 8 --output_dir "$TMP/bom" --log_level warn
expect_output 'Average Accuracy'
no_temporaries "$TMP"
finish
