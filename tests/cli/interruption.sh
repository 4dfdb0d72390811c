# Interruptions lose nothing already done: SIGTERM (Slurm's warning) finishes the items in flight, saves them
# and exits 143 with a truthful message; kill -9 loses at most the items in flight; a damaged line in a
# journal costs that line only; and the rerun ends with exactly the files of an uninterrupted run.
source "$(dirname "$0")/lib.bash"
export OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# wait_for_records FILE N: until FILE (a journal) has N records (header + N lines), at most 120 s.
wait_for_records() {
  for _ in $(seq 1200); do
    [ -f "$1" ] && [ "$(wc -l < "$1")" -gt "$2" ] && return 0
    sleep 0.1
  done
  echo "FAIL: $1 never got $2 records"; fails=$((fails+1)); return 1
}
same_files() {  # same_files DIR_A DIR_B FILE...: byte-identical
  local a=$1 b=$2; shift 2
  for f in "$@"; do cmp -s "$a/$f" "$b/$f" || { echo "FAIL: $f differs from the uninterrupted run's"; fails=$((fails+1)); }; done
}

P=(prepare_startup_data --model_name tiny --dataset_name ARITH --max_questions 10 --sampling_n 8 --max_new_tokens 160)
FILES=(ARITH.samples.T1.00.n8.jsonl ARITH.samples.T1.00.n8.config.json ARITH.sft.T1.00.n8.json ARITH.dpo_top_k1.T1.00.n8.json)
expect_exit 0 "$CTM" "${P[@]}" --output_dir "$TMP/ref" --log_level warn

# SIGTERM: the questions in flight are finished and kept; 143 and the truth about what is saved.
J="$TMP/term/data/tiny/ARITH.samples.T1.00.n8.jsonl.parts/rank-0.jsonl"
"$CTM" "${P[@]}" --output_dir "$TMP/term" --max_batch 8 > "$TMP/term.log" 2>&1 &
pid=$!
wait_for_records "$J" 2 && kill -TERM $pid
wait $pid; rc=$?
OUTPUT=$(cat "$TMP/term.log")
[ $rc = 143 ] || { echo "FAIL: SIGTERM gave exit $rc, want 143"; echo "$OUTPUT"; fails=$((fails+1)); }
expect_output 'stopped on request: [0-9]+ of 10 questions are saved in .*parts; rerun the same command to resume'
saved=$(grep -oE '[0-9]+ of 10 questions' <<<"$OUTPUT" | cut -d' ' -f1)
[ "$saved" -ge 2 ] 2>/dev/null || { echo "FAIL: only '$saved' questions saved"; fails=$((fails+1)); }
expect_exit 0 "$CTM" "${P[@]}" --output_dir "$TMP/term" --log_level info
expect_output "\(${saved} already sampled\)"
same_files "$TMP/ref/data/tiny" "$TMP/term/data/tiny" "${FILES[@]}"
[ ! -e "$TMP/term/data/tiny/ARITH.samples.T1.00.n8.jsonl.parts" ] || { echo "FAIL: the journal folder is left"; fails=$((fails+1)); }

# kill -9, then a damaged line in the middle of the journal: that line is redone, the valid ones after it kept.
J="$TMP/kill/data/tiny/ARITH.samples.T1.00.n8.jsonl.parts/rank-0.jsonl"
"$CTM" "${P[@]}" --output_dir "$TMP/kill" --max_batch 8 --log_level warn > /dev/null 2>&1 &
pid=$!
wait_for_records "$J" 3 && kill -KILL $pid
wait $pid 2> /dev/null
sed -i '3s/"responses"/"respon/' "$J"   # damage the second record (line 3)
expect_exit 0 "$CTM" "${P[@]}" --output_dir "$TMP/kill" --log_level info
expect_output 'rank-0.jsonl:3: invalid JSON.*that line is skipped'
expect_output '\([0-9]+ already sampled\)'
same_files "$TMP/ref/data/tiny" "$TMP/kill/data/tiny" "${FILES[@]}"

# Runs with other settings never overwrite each other's finished work; settings always describe the data.
expect_exit 0 "$CTM" "${P[@]}" --t 0.8 --output_dir "$TMP/ref" --log_level warn
same_files "$TMP/ref/data/tiny" "$TMP/term/data/tiny" "${FILES[@]}"
python3 - "$TMP/ref/data/tiny" <<'PY' || fails=$((fails+1))
import json, sys
d = sys.argv[1]
for tag, t in (("T1.00.n8", 1.0), ("T0.80.n8", 0.8)):
    for name in (f"ARITH.samples.{tag}.config.json",):
        assert json.load(open(f"{d}/{name}"))["t"] == t, name
    assert json.load(open(f"{d}/ARITH.dpo_top_k1.{tag}.json"))["config"]["t"] == t, tag
print("settings match their data")
PY
# Another top_p under the same name: an error naming the difference, nothing touched.
expect_exit 1 "$CTM" "${P[@]}" --top_p 0.5 --output_dir "$TMP/ref"
expect_output 'was made with other settings; remove it'
expect_output '^  top_p: 0.95 there, 0.5 in this run'
same_files "$TMP/ref/data/tiny" "$TMP/term/data/tiny" "${FILES[@]}"
# Another grader: the samples are regraded, not sampled again.
cp -r "$TMP/ref" "$TMP/regrade"
expect_exit 0 "$CTM" "${P[@]}" --grader math --output_dir "$TMP/regrade" --log_level info
expect_output '^prepare_startup_data: 10 questions, 80 samples'
if grep -q 'already sampled' <<<"$OUTPUT"; then echo "FAIL: sampled again for another grader"; fails=$((fails+1)); fi
grep -q '"grader": "math"' "$TMP/regrade/data/tiny/ARITH.samples.T1.00.n8.config.json" || { echo "FAIL: not regraded"; fails=$((fails+1)); }

# evaluation and generate keep what they finished too.
E=(evaluation --model_name tiny --dataset_name ARITH --max_questions 40 --max_new_tokens 160)
expect_exit 0 "$CTM" "${E[@]}" --output_dir "$TMP/eref" --log_level warn
"$CTM" "${E[@]}" --output_dir "$TMP/eterm" --max_batch 4 > "$TMP/eterm.log" 2>&1 &
pid=$!
wait_for_records "$TMP/eterm/output/tiny/ARITH/base/result_0.jsonl.parts/rank-0.jsonl" 4 && kill -TERM $pid
wait $pid; rc=$?
[ $rc = 143 ] || { echo "FAIL: evaluation SIGTERM gave exit $rc"; cat "$TMP/eterm.log"; fails=$((fails+1)); }
grep -qE 'stopped on request: [0-9]+ of 40 questions are saved' "$TMP/eterm.log" || { echo "FAIL: evaluation stop message"; cat "$TMP/eterm.log"; fails=$((fails+1)); }
expect_exit 0 "$CTM" "${E[@]}" --output_dir "$TMP/eterm" --log_level warn
same_files "$TMP/eref/output/tiny/ARITH/base" "$TMP/eterm/output/tiny/ARITH/base" result_0.jsonl summary_0.json

# logprobs and tokenize stop on SIGTERM too (143), and say what they kept.
python3 -c "
import json
for i in range(3000): print(json.dumps({'ids': [(i * 7 + k) % 700 for k in range(600)]}))" > "$TMP/many.jsonl"
"$CTM" logprobs --model_name tiny --input "$TMP/many.jsonl" --output "$TMP/lp.jsonl" > "$TMP/lp.log" 2>&1 &
pid=$!
wait_for_records "$TMP/lp.jsonl.parts/rank-0.jsonl" 1 && kill -TERM $pid
wait $pid; rc=$?
[ $rc = 143 ] || { echo "FAIL: logprobs SIGTERM gave exit $rc"; cat "$TMP/lp.log"; fails=$((fails+1)); }
grep -qE 'stopped on request: [0-9]+ of 3000 lines are saved' "$TMP/lp.log" || { echo "FAIL: logprobs stop message"; cat "$TMP/lp.log"; fails=$((fails+1)); }

# Under mpirun: mpirun forwards SIGUSR1 to every rank (a SIGTERM it turns into an abort of the job, exit 1,
# ranks killed a second later): both ranks save, agree, and mpirun exits 143. After either, the rerun finishes
# with the files of an uninterrupted run.
if command -v mpirun > /dev/null; then
  for sig in USR1 TERM; do
    J="$TMP/mpi_$sig/data/tiny/ARITH.samples.T1.00.n8.jsonl.parts/rank-1.jsonl"
    mpirun -np 2 --oversubscribe "$CTM" "${P[@]}" --output_dir "$TMP/mpi_$sig" --max_batch 8 > "$TMP/mpi.log" 2>&1 &
    pid=$!
    wait_for_records "$J" 1 && kill -$sig $pid
    wait $pid; rc=$?
    if [ $sig = USR1 ]; then
      [ $rc = 143 ] || { echo "FAIL: SIGUSR1 to mpirun gave exit $rc, want 143"; cat "$TMP/mpi.log"; fails=$((fails+1)); }
      grep -qE 'stopped on request: [0-9]+ of 10 questions are saved' "$TMP/mpi.log" || { echo "FAIL: no stop message under mpirun"; cat "$TMP/mpi.log"; fails=$((fails+1)); }
    else
      [ $rc != 0 ] || { echo "FAIL: SIGTERM to mpirun gave exit 0"; fails=$((fails+1)); }
    fi
    expect_exit 0 mpirun -np 2 --oversubscribe "$CTM" "${P[@]}" --output_dir "$TMP/mpi_$sig" --log_level warn
    same_files "$TMP/term/data/tiny" "$TMP/mpi_$sig/data/tiny" "${FILES[@]}"
  done
  # One rank killed (kill -9): mpirun ends the job; the rerun keeps what both ranks had journaled and ends with
  # the uninterrupted run's files.
  J="$TMP/mpi_kill/data/tiny/ARITH.samples.T1.00.n8.jsonl.parts/rank-1.jsonl"
  mpirun -np 2 --oversubscribe "$CTM" "${P[@]}" --output_dir "$TMP/mpi_kill" --max_batch 8 > "$TMP/mpi.log" 2>&1 &
  pid=$!
  wait_for_records "$J" 1 && kill -KILL "$(pgrep -P $pid | tail -1)"
  wait $pid; rc=$?
  [ $rc != 0 ] || { echo "FAIL: mpirun exited 0 with a rank killed"; fails=$((fails+1)); }
  expect_exit 0 mpirun -np 2 --oversubscribe "$CTM" "${P[@]}" --output_dir "$TMP/mpi_kill" --log_level info
  expect_output '\([1-9][0-9]* already sampled\)'
  same_files "$TMP/term/data/tiny" "$TMP/mpi_kill/data/tiny" "${FILES[@]}"
fi
finish
