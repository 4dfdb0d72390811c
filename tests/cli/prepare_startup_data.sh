# ctm prepare_startup_data on the embedded tiny model, ARITH: the samples, SFT and DPO files and their shapes
# and text conventions, consistent selections (every pair's chosen graded correct and rejected incorrect in the
# samples file), the same bytes on a rerun (nothing to sample) and with two MPI ranks, and other settings
# written beside, not over, earlier work. Interruptions: tests/cli/interruption.sh.
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1

args=(prepare_startup_data --model_name tiny --dataset_name ARITH --max_questions 6 --sampling_n 8
      --max_new_tokens 160)
FILES=(ARITH.samples.T1.00.n8.jsonl ARITH.samples.T1.00.n8.config.json ARITH.sft.T1.00.n8.json ARITH.dpo_top_k1.T1.00.n8.json)
D="$TMP/one/data/tiny"
expect_exit 0 "$CTM" "${args[@]}" --output_dir "$TMP/one" --log_level warn
expect_output '^prepare_startup_data: 6 questions, 48 samples, accuracy [0-9]+\.[0-9]{2}%, SFT pos [0-9]+, SFT neg [0-9]+, DPO pairs [0-9]+$'
for f in "${FILES[@]}"; do
  [ -f "$D/$f" ] || { echo "FAIL: no $D/$f"; fails=$((fails+1)); }
done
[ ! -e "$D/ARITH.samples.T1.00.n8.jsonl.parts" ] || { echo "FAIL: the journal is left behind"; fails=$((fails+1)); }

# Shapes and consistency, checked in Python (json module).
python3 - "$D" "$SRC/data/prompts/arith_4shot.txt" <<'PY' || fails=$((fails+1))
import json, math, sys
d, prefix = sys.argv[1], open(sys.argv[2]).read()
lines = [json.loads(l) for l in open(f"{d}/ARITH.samples.T1.00.n8.jsonl")]
assert len(lines) == 6, len(lines)
by_id = {}
for i, rec in enumerate(lines):
    assert list(rec) == ["id", "question", "answer", "responses"], list(rec)
    assert rec["id"] == str(i) and isinstance(rec["answer"], list) and len(rec["responses"]) == 8
    for r in rec["responses"]:
        assert list(r) == ["text", "extracted", "correct"] and isinstance(r["correct"], bool), r
    by_id[rec["id"]] = rec
def label(qid, text):  # the SFT/DPO files hold the samples stripped (the release's convention)
    hits = [r for r in by_id[qid]["responses"] if r["text"].strip() == text]
    assert hits, (qid, text)
    return hits[0]
sft = json.load(open(f"{d}/ARITH.sft.T1.00.n8.json"))
assert list(sft) == ["config", "pos", "neg"], list(sft)
assert sft["config"]["sampling_n"] == 8 and sft["config"]["t"] == 1.0 and sft["config"]["top_p"] == 0.95
for qid, e in sft["pos"].items():
    assert list(e) == ["question", "response", "answer"] and label(qid, e["response"])["correct"], e
    assert e["response"] == e["response"].strip(), e
    assert e["question"] == by_id[qid]["question"] and e["answer"] == by_id[qid]["answer"]
negs_per_q = {}
for key, e in sft["neg"].items():
    qid, k = key.rsplit("_", 1)
    r = label(qid, e["response"])
    assert not r["correct"] and r["extracted"] != "", (key, r)
    negs_per_q[qid] = negs_per_q.get(qid, 0) + 1
for qid, rec in by_id.items():
    wrong = [r for r in rec["responses"] if not r["correct"] and r["extracted"]]
    right = [r for r in rec["responses"] if r["correct"] and r["extracted"]]
    assert (qid in sft["pos"]) == bool(right), qid
    assert (negs_per_q.get(qid, 0) > 0) == bool(wrong), qid
    assert negs_per_q.get(qid, 0) <= math.ceil(len(wrong) / 2), qid
dpo = json.load(open(f"{d}/ARITH.dpo_top_k1.T1.00.n8.json"))
assert list(dpo) == ["config", "prompt", "chosen", "rejected", "answer"], list(dpo)
pairs = len(dpo["prompt"])
assert all(len(dpo[k]) == pairs for k in ("chosen", "rejected", "answer"))
both = [q for q, rec in by_id.items()
        if any(r["correct"] and r["extracted"] for r in rec["responses"])
        and any(not r["correct"] and r["extracted"] for r in rec["responses"])]
assert pairs == len(both), (pairs, both)
for qid, p, c, r, a in zip(both, dpo["prompt"], dpo["chosen"], dpo["rejected"], dpo["answer"]):
    assert p == prefix + "Question: " + by_id[qid]["question"] + "\nAnswer: ", p
    assert label(qid, c)["correct"] and not label(qid, r)["correct"] and a == by_id[qid]["answer"]
    sampled = (p.strip() + label(qid, c)["text"])
    assert p + c == sampled, "prompt + chosen is not the sampled text"
print(f"shapes ok: {len(sft['pos'])} pos, {len(sft['neg'])} neg, {pairs} pairs")
PY

# A rerun (all questions done): the same bytes.
mkdir -p "$TMP/first" && cp "$D"/ARITH.* "$TMP/first/"
expect_exit 0 "$CTM" "${args[@]}" --output_dir "$TMP/one" --log_level warn
for f in "${FILES[@]}"; do
  cmp -s "$TMP/first/$f" "$D/$f" || { echo "FAIL: $f differs on a rerun"; fails=$((fails+1)); }
done

# Another seed: its own files (".seed7"), the first run's untouched.
expect_exit 0 "$CTM" "${args[@]}" --output_dir "$TMP/one" --seed 7 --log_level info
expect_output '\(0 already sampled\)'
[ -f "$D/ARITH.dpo_top_k1.T1.00.n8.seed7.json" ] || { echo "FAIL: no seed-7 DPO file"; fails=$((fails+1)); }
for f in "${FILES[@]}"; do
  cmp -s "$TMP/first/$f" "$D/$f" || { echo "FAIL: $f changed by a run with another seed"; fails=$((fails+1)); }
done

# Two ranks: the same bytes as one.
if command -v mpirun > /dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  expect_exit 0 mpirun -np 2 --oversubscribe "$CTM" "${args[@]}" --output_dir "$TMP/np2" --log_level warn
  for f in "${FILES[@]}"; do
    cmp -s "$TMP/first/$f" "$TMP/np2/data/tiny/$f" || { echo "FAIL: $f differs between 1 and 2 ranks"; fails=$((fails+1)); }
  done
fi

# Usage errors.
expect_exit 2 "$CTM" prepare_startup_data --model_name tiny --output_dir "$TMP/err"
expect_output 'needs --dataset_name'
expect_exit 2 "$CTM" prepare_startup_data --model_name tiny --dataset_name ARITH --t 0 --output_dir "$TMP/err"
expect_output 't must be > 0'
finish
