# `ctm pipeline` end to end on tiny/ARITH at a few steps per stage: every stage runs, the table has its six
# rows, every file is well formed (the CE score file read by h5py alone), a rerun skips what is done, and a
# train_cdpo run killed (kill -9) or stopped (SIGTERM) and resumed ends with the uninterrupted run's adapter.
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$TMP"
cat > small.ini <<'INI'
max_questions = 24
sampling_n = 8
[prepare_startup_data]
max_new_tokens = 160
[train_ce]
max_steps = 6
valid_examples = 8
warmup_steps = 1
[train_sft]
max_steps = 3
grad_accum = 1
[train_cdpo]
max_steps = 6
grad_accum = 1
checkpoint_every = 1
[evaluation]
max_questions = 12
max_new_tokens = 160
INI
# Options that would do nothing are errors: --lora_path for a task that trains its own adapter, a
# task's option before any [task] section of the options file.
expect_exit 2 "$CTM" train_cdpo --model_name tiny --dataset_name ARITH --lora_path "$TMP" --output_dir "$TMP/x"
expect_output 'train_cdpo cdpo starts from the base model and does not use --lora_path'
printf 'max_new_tokens = 10\n' > bad.ini
expect_exit 2 "$CTM" pipeline --model_name tiny --dataset_name ARITH --pipeline_config bad.ini --output_dir "$TMP/x"
expect_output "'max_new_tokens' before any \\[task\\] section"
[ ! -e "$TMP/x" ] || { echo "FAIL: a refused command wrote $TMP/x"; fails=$((fails+1)); }

PL=(pipeline --model_name tiny --dataset_name ARITH --pipeline_config small.ini --output_dir "$TMP/run")
expect_exit 0 "$CTM" "${PL[@]}" --log_level warn
for row in Baseline SFT DPO RPO cDPO cDPO-token; do expect_output "^$row: [0-9]+\.[0-9]{2}%$"; done
[ "$(tail -6 <<<"$OUTPUT" | cut -d: -f1 | tr '\n' ' ')" = "Baseline SFT DPO RPO cDPO cDPO-token " ] ||
  { echo "FAIL: the table is not the last six lines in Table 1's order"; fails=$((fails+1)); }

/usr/bin/python3 "$SRC/tools/h5check.py" "$TMP/run/data/tiny/ARITH.ce_scores.h5" > h5.log 2>&1 ||
  { echo "FAIL: h5check:"; cat h5.log; fails=$((fails+1)); }
/usr/bin/python3 - "$TMP/run" <<'PY' || fails=$((fails+1))
import json, os, sys
root = sys.argv[1]
ck = f"{root}/checkpoints/tiny/ARITH"
report = json.load(open(f"{root}/output/tiny/ARITH/pipeline.json"))
assert set(report["results"]) == {"Baseline", "SFT", "DPO", "RPO", "cDPO", "cDPO-token"}, report["results"]
assert all(0 <= v <= 100 for v in report["results"].values())
for name in ("sft/pos", "sft/neg", "sft_chosen", "dpo", "rpo", "cdpo", "cdpo_token"):
    cfg = json.load(open(f"{ck}/{name}/adapter_config.json"))
    assert cfg["peft_type"] == "LORA" and cfg["r"] > 0, name
    st = open(f"{ck}/{name}/adapter_model.safetensors", "rb").read()
    header = json.loads(st[8:8 + int.from_bytes(st[:8], "little")])
    assert any(k.endswith("lora_A.weight") for k in header), name
    metrics = [json.loads(l) for l in open(f"{ck}/{name}/metrics.jsonl")]
    assert metrics and all("loss" in m and "lr" in m for m in metrics), name
for name in ("dpo", "rpo", "cdpo", "cdpo_token"):
    last = [json.loads(l) for l in open(f"{ck}/{name}/metrics.jsonl")][-1]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
        assert key in last, (name, key)
print("pipeline files well formed")
PY

# A rerun skips every finished stage.
expect_exit 0 "$CTM" "${PL[@]}" --log_level warn
n_done=$(grep -c "(done earlier)" <<<"$OUTPUT")
[ "$n_done" = 14 ] || { echo "FAIL: $n_done of 14 stages skipped on a rerun"; echo "$OUTPUT"; fails=$((fails+1)); }

# train_cdpo resumes to the uninterrupted adapter after kill -9 and after SIGTERM (exit 143).
mapfile -t ARGS < <(/usr/bin/python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["args"]))' \
  "$TMP/run/output/tiny/ARITH/pipeline/cdpo.json")
REF="$TMP/run/checkpoints/tiny/ARITH/cdpo/adapter_model.safetensors"
wait_for_step() {  # wait_for_step STATE_DIR N: until the checkpoint of update N or later is saved (120 s at most)
  for _ in $(seq 1200); do
    /usr/bin/python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["step"] < int(sys.argv[2]))' \
      "$1/trainer_state.json" "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "FAIL: no checkpoint of update $2 in $1"; fails=$((fails+1)); return 1
}
for sig in KILL TERM; do
  out="$TMP/resume-$sig"
  (cd "$TMP/run" && exec "$CTM" train_cdpo "${ARGS[@]}" --out "$out") > "$sig.log" 2>&1 &
  pid=$!
  wait_for_step "$out.state" 2 && kill -$sig $pid
  wait $pid; rc=$?
  want=$([ $sig = KILL ] && echo 137 || echo 143)
  [ $rc = "$want" ] || { echo "FAIL: $sig gave exit $rc, want $want"; cat "$sig.log"; fails=$((fails+1)); }
  [ ! -e "$out/adapter_model.safetensors" ] || { echo "FAIL: $sig left an adapter of an unfinished run"; fails=$((fails+1)); }
  expect_exit 0 bash -c "cd '$TMP/run' && exec '$CTM' train_cdpo $(printf '%q ' "${ARGS[@]}") --out '$out'"
  cmp -s "$REF" "$out/adapter_model.safetensors" ||
    { echo "FAIL: the adapter resumed after $sig differs from the uninterrupted run's"; fails=$((fails+1)); }
done
# train_ce killed (kill -9) while training the positive model, then again while training the negative one:
# the third run ends with the uninterrupted run's two adapters.
mapfile -t CEARGS < <(/usr/bin/python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["args"]))' \
  "$TMP/run/output/tiny/ARITH/pipeline/train_ce.json")
ce_train() { (cd "$TMP/run" && exec "$CTM" train_ce "${CEARGS[@]}" --checkpoint_every 1 --out "$TMP/ce-kill"); }
for side in pos neg; do
  ce_train > "ce-$side.log" 2>&1 &
  pid=$!
  wait_for_step "$TMP/ce-kill/$side.state" 2 && kill -KILL $pid
  wait $pid 2>/dev/null
done
expect_exit 0 ce_train
expect_output 'train_ce neg: resumed from .* at step [2-9]'
for side in pos neg; do
  cmp -s "$TMP/run/checkpoints/tiny/ARITH/sft/$side/adapter_model.safetensors" "$TMP/ce-kill/$side/adapter_model.safetensors" ||
    { echo "FAIL: train_ce $side adapter after two kills differs from the uninterrupted run's"; fails=$((fails+1)); }
done

# Under mpirun -np 2, one rank killed (kill -9) in the middle of train_cdpo: mpirun ends the job, and the rerun
# resumes to the adapter of an uninterrupted two-rank run.
if command -v mpirun > /dev/null; then
  cdpo2() { (cd "$TMP/run" && exec mpirun -np 2 --oversubscribe "$CTM" train_cdpo "${ARGS[@]}" --out "$1"); }
  cdpo2 "$TMP/ref-2ranks" > ref2.log 2>&1 || { echo "FAIL: train_cdpo on 2 ranks"; cat ref2.log; fails=$((fails+1)); }
  cdpo2 "$TMP/resume-rank" > rank.log 2>&1 &
  pid=$!
  wait_for_step "$TMP/resume-rank.state" 2 && kill -KILL "$(pgrep -P $pid | head -1)"
  wait $pid; rc=$?
  [ $rc != 0 ] || { echo "FAIL: mpirun exited 0 with a rank killed"; fails=$((fails+1)); }
  expect_exit 0 cdpo2 "$TMP/resume-rank"
  expect_output 'resumed from .* at step [2-9]'
  cmp -s "$TMP/ref-2ranks/adapter_model.safetensors" "$TMP/resume-rank/adapter_model.safetensors" ||
    { echo "FAIL: 2 ranks, one killed and resumed: the adapter differs from the uninterrupted run's"; fails=$((fails+1)); }
fi

# --dry_run on finished work: every stage is done, the adapters' training states say where they ended, and
# the sharded base is half of tiny's 14.19 MB on each of 2 ranks.
expect_exit 0 "$CTM" "${PL[@]}" --dry_run
n_done=$(grep -c "done, skipped: ctm " <<<"$OUTPUT")
[ "$n_done" = 14 ] || { echo "FAIL: the dry run says $n_done of 14 stages are done"; echo "$OUTPUT"; fails=$((fails+1)); }
if command -v mpirun > /dev/null; then
  expect_exit 0 bash -c "cd '$TMP/run' && exec mpirun -np 2 --oversubscribe '$CTM' train_cdpo $(printf '%q ' "${ARGS[@]}") --dry_run"
  expect_output '^  ranks +2 \(2 on this node\)$'
  expect_output '^  memory/rank +[0-9.]+ MB = weight shards 7.48 MB \+ gathered block [0-9.]+ MB \+ LoRA'
  expect_output "^  resumes +from the checkpoint of update 6 in "
fi

# calculate_ce_score killed (kill -9) after its first batches resumes from the pairs already scored, and its
# file holds the uninterrupted run's values.
mapfile -t CE < <(/usr/bin/python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["args"]))' \
  "$TMP/run/output/tiny/ARITH/pipeline/ce_score.json")
ce_run() { (cd "$TMP/run" && exec "$CTM" calculate_ce_score "${CE[@]}" --batch_tokens 1500 --output "$1"); }
ce_run "$TMP/ce-ref.h5" > ce-ref.log 2>&1 || { echo "FAIL: calculate_ce_score"; cat ce-ref.log; fails=$((fails+1)); }
ce_run "$TMP/ce-kill.h5" > ce-kill.log 2>&1 &
pid=$!
for _ in $(seq 1200); do
  [ "$(cat "$TMP/ce-kill.h5.parts/rank-0.jsonl" 2>/dev/null | wc -l)" -ge 3 ] && break
  sleep 0.1
done
kill -KILL $pid; wait $pid 2>/dev/null
expect_exit 0 ce_run "$TMP/ce-kill.h5"
expect_output 'calculate_ce_score: 14 pairs of .* \([1-9][0-9]* already scored\)'
/usr/bin/python3 - "$TMP/ce-ref.h5" "$TMP/ce-kill.h5" <<'PY' || fails=$((fails+1))
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def walk(g, out):
    for k, v in g.items():
        walk(v, out) if isinstance(v, h5py.Group) else out.append(v.name)
    return out
names = walk(a, [])
assert names == walk(b, []), "different datasets"
for n in names:
    x, y = a[n][()], b[n][()]
    if x.dtype.kind == "f":
        assert np.allclose(x, y, rtol=0, atol=1e-5), n
    else:
        assert (x == y).all(), n
print("resumed CE scores equal the uninterrupted run's")
PY

finish
