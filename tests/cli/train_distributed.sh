# ctm train_cdpo on the embedded tiny model, ARITH, with 1, 2 and 3 ranks and --fsdp on and off: the adapter
# after 4 updates is the same (1e-5 relative) in all five runs. An update takes up to 6 micro-batches of one
# pair: one rank accumulates 6, two ranks 3 each, three ranks 2 each; 5 pairs split unevenly, so some ranks run
# a zero-weighted pass in the last round (what keeps a sharded base's all-gathers in step). Gradients are
# summed in float64, so the order of the sum (which the rank count changes) does not show.
# The inputs are built as in prepare_startup_data.sh, the DPO prompts cut to the question (the 4-shot prefix
# would make the sequences six times longer and the test slow).
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1
command -v mpirun > /dev/null || { echo "skipped: no mpirun"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

common=(--model_name tiny --dataset_name ARITH --sampling_n 8 --output_dir "$TMP")
DPO="$TMP/data/tiny/ARITH.dpo_top_k1.T1.00.n8.json"
expect_exit 0 "$CTM" prepare_startup_data "${common[@]}" --max_questions 12 --max_new_tokens 160 --log_level warn
python3 - "$DPO" <<'PY' || fails=$((fails+1))
import json, sys
d = json.load(open(sys.argv[1]))
d["prompt"] = [p[p.rindex("Question: "):] for p in d["prompt"]]
n = len(d["prompt"])
assert n % 2 == 1 and n % 3 != 0, f"{n} pairs: want a count that 2 and 3 ranks split unevenly"
json.dump(d, open(sys.argv[1], "w"))
PY
expect_exit 0 "$CTM" train_ce "${common[@]}" --max_steps 1 --batch_size 2 --valid_examples 1 --log_level warn
expect_exit 0 "$CTM" calculate_ce_score "${common[@]}" --log_level warn

train=(train_cdpo "${common[@]}" --max_steps 4 --batch_size 1)
expect_exit 0 "$CTM" "${train[@]}" --grad_accum 6 --fsdp off --out "$TMP/np1_off" --log_level warn
expect_exit 0 "$CTM" "${train[@]}" --grad_accum 6 --fsdp on --out "$TMP/np1_on" --log_level warn
expect_exit 0 mpirun -np 2 --oversubscribe "$CTM" "${train[@]}" --grad_accum 3 --out "$TMP/np2_auto" \
  --log_level info
expect_output 'base model sharded over 2 ranks'
expect_exit 0 mpirun -np 2 --oversubscribe "$CTM" "${train[@]}" --grad_accum 3 --fsdp off --out "$TMP/np2_off" \
  --log_level warn
expect_exit 0 mpirun -np 3 --oversubscribe "$CTM" "${train[@]}" --grad_accum 2 --out "$TMP/np3_auto" \
  --log_level info
expect_output 'base model sharded over 3 ranks: 52[0-9]{5} B of its 14187520 B of weights resident on rank 0'
echo "$OUTPUT" | grep -o 'base model sharded over 3 ranks: [0-9]* B .* rank [0-9]' | sort

# The adapters against the one-rank unsharded run, tensor by tensor (safetensors read with the json module).
python3 - "$TMP" <<'PY' || fails=$((fails+1))
import array, json, struct, sys
def load(path):
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        data = f.read()
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        assert v["dtype"] == "F32", (path, name, v["dtype"])
        out[name] = array.array("f", data[v["data_offsets"][0]:v["data_offsets"][1]])
    return out
ref = load(f"{sys.argv[1]}/np1_off/adapter_model.safetensors")
assert all(max(map(abs, t)) > 0 for n, t in ref.items() if "lora_B" in n), "lora_B still zero: no training"
ok = True
for run in ("np1_on", "np2_auto", "np2_off", "np3_auto"):
    got = load(f"{sys.argv[1]}/{run}/adapter_model.safetensors")
    assert got.keys() == ref.keys(), run
    worst = max(max(abs(a - b) for a, b in zip(got[n], t)) / max(map(abs, t)) for n, t in ref.items())
    print(f"{run}: {len(got)} tensors, max relative difference {worst:.3g} from np1_off")
    ok &= worst <= 1e-5
sys.exit(0 if ok else 1)
PY

expect_exit 2 "$CTM" "${train[@]}" --fsdp yes --out "$TMP/err"
expect_output 'fsdp yes: expected on, off or auto'
finish
