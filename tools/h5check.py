#!/usr/bin/python3
"""Validates a ctm score file (ce_scores.h5 or rollouts.h5, docs/file-formats.md) with h5py alone and prints
a summary: every dataset's type and shape, CSR offsets (start at 0, never decrease, end at the data's
length), indices in range, values finite, probabilities in [0, 1], counts consistent, attributes present.

Usage: tools/h5check.py FILE...   (Debian: apt-get install python3-h5py python3-numpy)
Exit status: 0 every file valid, 1 a file has problems (each one printed), 2 usage or h5py missing.
"""
import json
import os
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"h5check: {e}; install python3-h5py and python3-numpy", file=sys.stderr)
    sys.exit(2)

FORMATS = {"ctm-ce-scores": 1, "ctm-rollouts": 1}


class Checker:
    def __init__(self, f):
        self.f = f
        self.problems = []

    def fail(self, msg):
        self.problems.append(msg)

    def dataset(self, name, dtype, length=None):
        """The dataset's values (numpy array or list of str), or None after recording why not."""
        if name not in self.f:
            self.fail(f"/{name}: missing")
            return None
        ds = self.f[name]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
            self.fail(f"/{name}: not a 1-D dataset")
            return None
        if dtype == "str":
            info = h5py.check_string_dtype(ds.dtype)
            if info is None or info.length is not None or info.encoding != "utf-8":
                self.fail(f"/{name}: {ds.dtype} is not a variable-length UTF-8 string")
                return None
        elif ds.dtype != np.dtype(dtype):
            self.fail(f"/{name}: {ds.dtype}, expected {np.dtype(dtype)}")
            return None
        if length is not None and ds.shape[0] != length:
            self.fail(f"/{name}: {ds.shape[0]} values, expected {length}")
            return None
        if dtype == "str":
            try:
                return list(ds.asstr()[()])
            except UnicodeDecodeError as e:
                self.fail(f"/{name}: not UTF-8 ({e})")
                return None
        return ds[()]

    def offsets(self, name, items, total):
        o = self.dataset(name, "int64", None if items is None else items + 1)
        if o is None or total is None:
            return None
        if len(o) == 0 or o[0] != 0:
            self.fail(f"/{name}: does not start at 0")
        elif np.any(np.diff(o) < 0):
            i = int(np.argmax(np.diff(o) < 0))
            self.fail(f"/{name}: decreases at item {i} ({o[i]} -> {o[i + 1]})")
        elif o[-1] != total:
            self.fail(f"/{name}: ends at {o[-1]}, the data has {total} values")
        else:
            return o
        return None

    def attr(self, name, kind):
        if name not in self.f.attrs:
            self.fail(f"attribute {name}: missing")
            return None
        v = self.f.attrs[name]
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        ok = {
            "str": isinstance(v, str),
            "int": isinstance(v, (int, np.integer)),
            "float": isinstance(v, (float, int, np.floating, np.integer)),
        }[kind]
        if not ok:
            self.fail(f"attribute {name}: {v!r} is not {kind}")
            return None
        return v

    def header(self):
        fmt = self.attr("format", "str")
        version = self.attr("format_version", "int")
        if fmt not in FORMATS:
            self.fail(f"attribute format: {fmt!r} is not one of {sorted(FORMATS)}")
            return None
        if version != FORMATS[fmt]:
            self.fail(f"attribute format_version: {version}, this check knows {FORMATS[fmt]}")
        for a in ("ctm_version", "model_name", "dataset_name"):
            self.attr(a, "str")
        settings = self.attr("settings", "str")
        if settings is not None:
            try:
                if not isinstance(json.loads(settings), dict):
                    self.fail("attribute settings: not a JSON object")
            except ValueError as e:
                self.fail(f"attribute settings: not JSON ({e})")
        return fmt

    def json_lists(self, name, values):
        for i, v in enumerate(values or []):
            try:
                ok = isinstance(json.loads(v), list)
            except ValueError:
                ok = False
            if not ok:
                self.fail(f"/{name}[{i}]: not a JSON list: {v[:80]!r}")
                return

    def starts_in_range(self, name, starts, offsets, low, high_offset):
        """starts[i] in [low, length_i + high_offset] for every item (length_i from offsets)."""
        if starts is None or offsets is None:
            return
        lengths = np.diff(offsets)
        bad = np.nonzero((starts < low) | (starts > lengths + high_offset))[0]
        if len(bad):
            i = int(bad[0])
            self.fail(f"/{name}[{i}] = {starts[i]} is outside [{low}, {lengths[i] + high_offset}]")


def first_of_each(offsets):
    """Flat indices of the first token of every non-empty item."""
    return offsets[:-1][np.diff(offsets) > 0]


def check_ce_scores(c):
    beta = c.attr("beta", "float")
    prompts = c.dataset("prompt", "str")
    P = None if prompts is None else len(prompts)
    c.json_lists("answer", c.dataset("answer", "str", P))
    summary = {"pairs": P, "beta": beta}
    for side in ("chosen", "rejected"):
        ids = c.dataset(f"{side}/token_ids", "int32")
        N = None if ids is None else len(ids)
        o = c.offsets(f"{side}/offsets", P, N)
        c.starts_in_range(f"{side}/response_start", c.dataset(f"{side}/response_start", "int32", P), o, 0, 0)
        c.dataset(f"{side}/response", "str", P)
        ce = c.dataset(f"{side}/ce_prob", "float32", N)
        lp = c.dataset(f"{side}/logp_pos", "float32", N)
        ln = c.dataset(f"{side}/logp_neg", "float32", N)
        if ce is not None and not np.all((ce >= 0) & (ce <= 1)):
            i = int(np.argmax(~((ce >= 0) & (ce <= 1))))
            c.fail(f"/{side}/ce_prob[{i}] = {ce[i]} is not a probability")
        for name, v in (("logp_pos", lp), ("logp_neg", ln)):
            if v is not None and not np.all(np.isfinite(v)):
                c.fail(f"/{side}/{name}[{int(np.argmax(~np.isfinite(v)))}] is not finite")
        if o is not None and ce is not None and lp is not None and ln is not None:
            first = first_of_each(o)
            if np.any(ce[first] != 1) or np.any(lp[first] != 0) or np.any(ln[first] != 0):
                c.fail(f"/{side}: a sequence's index 0 (no context) is not ce_prob 1, logp 0")
        summary[f"{side}_tokens"] = N
        if ce is not None and N:
            summary[f"{side}_mean_ce_prob"] = round(float(np.mean(ce)), 4)
    return summary


def check_counts(c, group, N):
    correct = c.dataset(f"{group}/correct", "int16", N)
    total = c.dataset(f"{group}/total", "int16", N)
    if correct is not None and total is not None:
        bad = np.nonzero((total < 0) | (correct < 0) | (correct > total))[0]
        if len(bad):
            i = int(bad[0])
            c.fail(f"/{group}: token {i}: {correct[i]} correct of {total[i]}")
    return correct, total


def check_alternatives(c, N, wo_correct, wo_total):
    alt_ids = c.dataset("without/alt_token_ids", "int32")
    M = None if alt_ids is None else len(alt_ids)
    ao = c.offsets("without/alt_offsets", N, M)
    ac = c.dataset("without/alt_correct", "int8", M)
    if ac is not None and not np.all((ac == 0) | (ac == 1)):
        c.fail("/without/alt_correct: values other than 0 and 1")
    if ao is not None and wo_total is not None and not np.array_equal(np.diff(ao), wo_total):
        i = int(np.argmax(np.diff(ao) != wo_total))
        c.fail(f"/without/alt_offsets: token {i} has {np.diff(ao)[i]} alternatives, without/total {wo_total[i]}")
    elif ao is not None and ac is not None and wo_correct is not None:
        sums = np.concatenate([[0], np.cumsum(ac, dtype=np.int64)])[ao]
        if not np.array_equal(np.diff(sums), wo_correct):
            i = int(np.argmax(np.diff(sums) != wo_correct))
            c.fail(f"/without/alt_correct: token {i} has {np.diff(sums)[i]} correct, without/correct {wo_correct[i]}")
    return M


def check_rollouts(c):
    for a, kind in (("t", "float"), ("top_p", "float"), ("rollouts_per_position", "int"), ("search", "str"),
                    ("seed", "int")):
        c.attr(a, kind)
    questions = c.dataset("trajectories/question", "str")
    T = None if questions is None else len(questions)
    c.json_lists("trajectories/answer", c.dataset("trajectories/answer", "str", T))
    ids = c.dataset("trajectories/token_ids", "int32")
    N = None if ids is None else len(ids)
    o = c.offsets("trajectories/offsets", T, N)
    c.starts_in_range("trajectories/response_start", c.dataset("trajectories/response_start", "int32", T), o, 0, 0)
    c.dataset("trajectories/pair_index", "int32", T)
    w_correct, w_total = check_counts(c, "with", N)
    wo_correct, wo_total = check_counts(c, "without", N)
    M = check_alternatives(c, N, wo_correct, wo_total)
    critical = c.dataset("critical/position", "int32", T)
    c.starts_in_range("critical/position", critical, o, -1, -1)
    summary = {"trajectories": T, "tokens": N, "alternatives": M}
    if critical is not None:
        summary["with_critical_token"] = int(np.sum(critical >= 0))
    for name, correct, total in (("with", w_correct, w_total), ("without", wo_correct, wo_total)):
        if correct is not None and total is not None:
            summary[f"{name}_rollouts"] = int(np.sum(total, dtype=np.int64))
            summary[f"{name}_success"] = round(float(np.sum(correct, dtype=np.int64)) / max(1, summary[f"{name}_rollouts"]), 4)
    return summary


def describe(f):
    rows = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            dtype = "string" if h5py.check_string_dtype(obj.dtype) else str(obj.dtype)
            rows.append(f"  /{name:28s} {dtype:8s} {obj.shape[0]:>10d}  {obj.compression or '-'}")

    f.visititems(visit)
    return rows


def check_file(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        print(f"{path}: INVALID: cannot open as HDF5 ({e})")
        return False
    with f:
        c = Checker(f)
        fmt = c.header()
        summary = {}
        if fmt == "ctm-ce-scores":
            summary = check_ce_scores(c)
        elif fmt == "ctm-rollouts":
            summary = check_rollouts(c)
        print(f"{path}: {fmt}, {os.path.getsize(path)} bytes, model {f.attrs.get('model_name', '?')}, "
              f"dataset {f.attrs.get('dataset_name', '?')}, ctm {f.attrs.get('ctm_version', '?')}")
        print("  " + ", ".join(f"{k} {v}" for k, v in summary.items()))
        for row in describe(f):
            print(row)
        if c.problems:
            print(f"{path}: INVALID ({len(c.problems)} problem(s)):")
            for p in c.problems:
                print(f"  - {p}")
            return False
        print(f"{path}: valid")
        return True


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2 if len(argv) < 2 else 0
    ok = True
    for path in argv[1:]:
        ok = check_file(path) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
