# ctm sampling, analyse and tools/plot_rollouts.py on the embedded tiny model, reduced: 3 trajectories of a
# small ARITH DPO file (prompts cut to the question), 4 rollouts a position. The rollouts file has the DESIGN
# §5 layout (read with h5py alone: the counts in range where rollouts were made, the alternatives never the
# original token, the critical positions the rule's); 2 ranks write the same file as 1 rank; a run killed with
# kill -9 resumes to the same file; analyse and the plot run on it. --search adaptive beside exhaustive (10
# rollouts a position, so that a first wave of 8 can stop a position early): the same rollouts where it makes
# them, the same critical positions where the exhaustive classes have no G after a Z, fewer tokens, the same
# file after kill -9 and a resume, and analyse and the plot run on it.
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$TMP"
common=(--model_name tiny --dataset_name ARITH --sampling_n 8 --output_dir "$TMP")
DPO="$TMP/data/tiny/ARITH.dpo_top_k1.T1.00.n8.json"
expect_exit 0 "$CTM" prepare_startup_data "${common[@]}" --max_questions 12 --max_new_tokens 160 --log_level warn
/usr/bin/python3 - "$DPO" <<'PY' || fails=$((fails+1))
import json, sys
d = json.load(open(sys.argv[1]))
d["prompt"] = [p[p.rindex("Question: "):] for p in d["prompt"]]
json.dump(d, open(sys.argv[1], "w"))
PY
S=(sampling "${common[@]}" --max_trajectories 3 --rollouts_per_position 4 --max_new_tokens 48)
expect_exit 0 "$CTM" "${S[@]}" --output "$TMP/one.rollouts.h5" --log_level warn
if command -v mpirun > /dev/null; then
  expect_exit 0 mpirun -np 2 --oversubscribe "$CTM" "${S[@]}" --output "$TMP/two.rollouts.h5" --log_level warn
fi
"$CTM" "${S[@]}" --output "$TMP/kill.rollouts.h5" --log_level warn > kill.log 2>&1 &
pid=$!
for _ in $(seq 1200); do
  [ "$(cat "$TMP/kill.rollouts.h5.parts/rank-0.jsonl" 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.1
done
kill -KILL $pid; wait $pid 2>/dev/null
expect_exit 0 "$CTM" "${S[@]}" --output "$TMP/kill.rollouts.h5" --log_level info
expect_output '3 trajectories of .* \([1-9] already done\)'

/usr/bin/python3 - "$TMP" <<'PY' || fails=$((fails+1))
import json, os, sys
import h5py, numpy as np
root = sys.argv[1]
f = h5py.File(f"{root}/one.rollouts.h5", "r")
assert f.attrs["format"] in ("ctm-rollouts", b"ctm-rollouts")
off, start = f["trajectories/offsets"][()], f["trajectories/response_start"][()]
ids = f["trajectories/token_ids"][()]
wc, wt, oc, ot = (f[k][()] for k in ("with/correct", "with/total", "without/correct", "without/total"))
ao, alt = f["without/alt_offsets"][()], f["without/alt_token_ids"][()]
crit = f["critical/position"][()]
assert len(crit) == 3
for t in range(3):
    a, b, s = off[t], off[t + 1], start[t]
    n = b - a
    assert (wt[a:a + s] == 0).all() and (ot[a:a + s] == 0).all(), "rollouts before the response"
    assert (wt[a + s:b - 1] == 4).all() and wt[b - 1] == 0, "with: first .. second-to-last response token"
    assert (ot[a + s:b] == 4).all(), "without: every response token"
    assert ((0 <= wc[a:b]) & (wc[a:b] <= wt[a:b])).all() and ((0 <= oc[a:b]) & (oc[a:b] <= ot[a:b])).all()
    for i in range(a + s, b):
        assert (alt[ao[i]:ao[i + 1]] != ids[i]).all(), "an alternative is the original token"
    # the rule, independently: first 0-correct prefix, dropped by a later one with more than 3 correct
    cand, last = -1, -1
    for i in range(n):
        if wt[a + i] == 0: continue
        if wc[a + i] == 0 and cand < 0: cand = i
        elif wc[a + i] > 3 and cand >= 0: last, cand = cand, -1
    assert crit[t] == (cand if cand >= 0 else last), (t, crit[t], cand, last)
def same(x, y):
    g, h = h5py.File(x, "r"), h5py.File(y, "r")
    names = []
    g.visit(lambda k: names.append(k) if isinstance(g[k], h5py.Dataset) else None)
    for k in names:
        assert (g[k][()] == h[k][()]).all(), (y, k)
same(f"{root}/one.rollouts.h5", f"{root}/kill.rollouts.h5")
if os.path.exists(f"{root}/two.rollouts.h5"):
    same(f"{root}/one.rollouts.h5", f"{root}/two.rollouts.h5")
stats = json.load(open(f"{root}/one.rollouts.stats.json"))
assert stats["search"] == "exhaustive" and stats["trajectories"] == 3 and stats["generated_tokens"] > 0, stats
assert stats["rollouts"] == int(wt.sum() + ot.sum()), stats
print("rollouts well formed; 2 ranks and a resumed run give the same file")
PY

A=(sampling "${common[@]}" --max_trajectories 3 --rollouts_per_position 10 --max_new_tokens 48 --log_level warn)
expect_exit 0 "$CTM" "${A[@]}" --search exhaustive --output "$TMP/ex.rollouts.h5"
expect_exit 0 "$CTM" "${A[@]}" --search adaptive --adaptive_window 2 --output "$TMP/ad.rollouts.h5"
"$CTM" "${A[@]}" --search adaptive --adaptive_window 2 --output "$TMP/adkill.rollouts.h5" > adkill.log 2>&1 &
pid=$!
for _ in $(seq 1200); do
  [ "$(cat "$TMP/adkill.rollouts.h5.parts/rank-0.jsonl" 2>/dev/null | wc -l)" -ge 2 ] && break  # the header, a trajectory
  sleep 0.05
done
kill -KILL $pid; wait $pid 2>/dev/null
expect_exit 0 "$CTM" "${A[@]/warn/info}" --search adaptive --adaptive_window 2 --output "$TMP/adkill.rollouts.h5"
expect_output '3 trajectories of .* \([1-9] already done\)'
/usr/bin/python3 - "$TMP" <<'PY' || fails=$((fails+1))
import json, sys
import h5py, numpy as np
root = sys.argv[1]
ex, ad = h5py.File(f"{root}/ex.rollouts.h5", "r"), h5py.File(f"{root}/ad.rollouts.h5", "r")
assert ad.attrs["search"] in ("adaptive", b"adaptive"), ad.attrs["search"]
E = {k: ex[k][()] for k in ("with/correct", "with/total", "without/correct", "without/total")}
D = {k: ad[k][()] for k in E}
off, start = ad["trajectories/offsets"][()], ad["trajectories/response_start"][()]
assert (off == ex["trajectories/offsets"][()]).all()
crit_e, crit_a = ex["critical/position"][()], ad["critical/position"][()]
def cls(c): return "Z" if c == 0 else "M" if c <= 3 else "G"
monotone = 0
for t in range(3):
    a, b, s = off[t], off[t + 1], start[t]
    wt, wc = D["with/total"][a:b], D["with/correct"][a:b]
    ewc = E["with/correct"][a:b]
    assert set(wt[:s]) <= {0} and set(wt) <= {0, 8, 10}, "with totals: 0, a first wave of 8, or all 10"
    full, early = wt == 10, wt == 8
    assert (wc[full] == ewc[full]).all(), "a full position's rollouts are exhaustive's"
    assert (wc[early] >= 4).all() and (wc[early] <= ewc[early]).all() and (ewc[early] - wc[early] <= 2).all()
    cand, last = -1, -1  # the rule on the adaptive file's counts is its critical position
    for i in range(b - a):
        if wt[i] == 0: continue
        if wc[i] == 0 and cand < 0: cand = i
        elif wc[i] > 3 and cand >= 0: last, cand = cand, -1
    assert crit_a[t] == (cand if cand >= 0 else last), (t, crit_a[t], cand, last)
    ot = D["without/total"][a:b]
    assert ot.sum() == (10 if crit_a[t] >= 0 else 0) and (crit_a[t] < 0 or ot[crit_a[t]] == 10), "without: the critical position only"
    if crit_a[t] >= 0:
        i = a + crit_a[t]
        assert D["without/correct"][i] == E["without/correct"][i]
        ea, da = ex["without/alt_offsets"][()], ad["without/alt_offsets"][()]
        assert (ex["without/alt_token_ids"][ea[i]:ea[i + 1]] == ad["without/alt_token_ids"][da[i]:da[i + 1]]).all()
    classes = "".join(cls(c) for c in ewc[s:b - a - 1])
    if "Z" not in classes or "G" not in classes[classes.index("Z"):]:
        monotone += 1
        assert crit_a[t] == crit_e[t], (t, classes, crit_a[t], crit_e[t])
se, sa = (json.load(open(f"{root}/{n}.rollouts.stats.json")) for n in ("ex", "ad"))
assert sa["search"] == "adaptive" and sa["rollouts"] >= int(D["with/total"].sum() + D["without/total"].sum()), sa
assert sa["generated_tokens"] < se["generated_tokens"] / 2, (sa, se)
assert monotone >= 1, "no trajectory with monotone classes: the comparison checked nothing"
g, h = ad, h5py.File(f"{root}/adkill.rollouts.h5", "r")
names = []
g.visit(lambda k: names.append(k) if isinstance(g[k], h5py.Dataset) else None)
for k in names:
    assert (g[k][()] == h[k][()]).all(), ("adkill", k)
print(f"adaptive: {monotone} of 3 monotone trajectories, the same critical positions;",
      f"{sa['generated_tokens']} tokens generated against {se['generated_tokens']}")
PY
expect_exit 0 "$CTM" analyse --rollouts "$TMP/ad.rollouts.h5" --ce_scores none
expect_output '^pass@k +with +without$'
expect_exit 0 /usr/bin/python3 "$SRC/tools/plot_rollouts.py" "$TMP/ad.rollouts.h5" --out "$TMP/png"
[ -s "$TMP/png/ad.rollouts.trajectory0.png" ] || { echo "FAIL: no figure of an adaptive file"; fails=$((fails+1)); }

expect_exit 0 "$CTM" analyse --rollouts "$TMP/one.rollouts.h5" --ce_scores none
expect_output '^pass@k +with +without$'
/usr/bin/python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert len(a["pass_at_k"]["with"]) == 4 and len(a["critical_position"]) == 3' \
  "$TMP/one.rollouts.analysis.json" || { echo "FAIL: analysis.json"; fails=$((fails+1)); }
expect_exit 0 /usr/bin/python3 "$SRC/tools/plot_rollouts.py" "$TMP/one.rollouts.h5" --out "$TMP/png"
[ -s "$TMP/png/one.rollouts.pass_at_k.png" ] || { echo "FAIL: no pass@k figure"; fails=$((fails+1)); }
finish
