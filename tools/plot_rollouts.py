#!/usr/bin/python3
"""Figures of rollout sampling from a rollouts.h5 file alone (Debian's python3-h5py and python3-matplotlib).

  tools/plot_rollouts.py data/rollout_sampling/tiny/ARITH.rollouts.h5 [--out DIR] [--trajectory T]

Writes into DIR (default: beside the file):
  <name>.trajectory<T>.png  the success rate of the rollouts from every prefix along trajectory T (the paper's
                            Figure 1): with the token (blue) and with it replaced by an alternative (orange),
                            the critical token marked;
  <name>.pass_at_k.png      pass@k, k = 1..n, with and without the critical token, averaged over the
                            trajectories that have one (the paper's Figure 2).
The critical positions are the file's (/critical/position); pass@k is the unbiased 1 - C(n-c, k) / C(n, k).
"""
import argparse
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def pass_at_k(n, c, k):
    """Unbiased pass@k of c correct of n samples, 1 <= k <= n (product form, no factorials)."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod((n - c - np.arange(k)) / (n - np.arange(k))))


def mean_pass_at_k(items, max_k):
    curve = []
    for k in range(1, max_k + 1):
        values = [pass_at_k(n, c, k) for n, c in items if n >= k]
        curve.append(np.mean(values) if values else np.nan)
    return np.array(curve)


def plot_trajectory(f, t, path):
    off = f["trajectories/offsets"][()]
    a, b = int(off[t]), int(off[t + 1])
    start = int(f["trajectories/response_start"][t])
    crit = int(f["critical/position"][t])
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for name, colour in (("with", "tab:blue"), ("without", "tab:orange")):
        total = f[f"{name}/total"][a:b].astype(float)
        rate = np.where(total > 0, f[f"{name}/correct"][a:b] / np.maximum(total, 1), np.nan)
        x = np.arange(b - a) - start
        ax.plot(x[start:], rate[start:], marker=".", color=colour,
                label=f"{name} the token" if name == "with" else "token replaced by an alternative")
    if crit >= 0:
        ax.axvline(crit - start, color="tab:red", linestyle="--", label=f"critical token ({crit - start})")
    ax.set_xlabel("response token")
    ax.set_ylabel("rollouts correct")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"trajectory {t} (pair {int(f['trajectories/pair_index'][t])})")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pass_at_k(f, path):
    off = f["trajectories/offsets"][()]
    crit = f["critical/position"][()]
    with_items, without_items = [], []
    for t, c in enumerate(crit):
        if c < 0:
            continue
        i = int(off[t]) + int(c)
        if f["with/total"][i] > 0:
            with_items.append((int(f["with/total"][i]), int(f["with/correct"][i])))
        if f["without/total"][i] > 0:
            without_items.append((int(f["without/total"][i]), int(f["without/correct"][i])))
    max_k = int(f.attrs["rollouts_per_position"])
    k = np.arange(1, max_k + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(k, 100 * mean_pass_at_k(with_items, max_k), label=f"with the critical token ({len(with_items)})")
    ax.plot(k, 100 * mean_pass_at_k(without_items, max_k), label=f"without it ({len(without_items)})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(-2, 102)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rollouts")
    p.add_argument("--out", help="folder for the PNG files (default: beside the file)")
    p.add_argument("--trajectory", type=int, help="trajectory for the Figure 1 plot (default: the first with a "
                   "critical token, else 0)")
    args = p.parse_args()
    out = args.out or os.path.dirname(os.path.abspath(args.rollouts))
    os.makedirs(out, exist_ok=True)
    name = os.path.basename(args.rollouts)
    name = name[:-3] if name.endswith(".h5") else name
    with h5py.File(args.rollouts, "r") as f:
        if f.attrs.get("format") not in ("ctm-rollouts", b"ctm-rollouts"):
            sys.exit(f"{args.rollouts}: not a ctm rollouts file (format {f.attrs.get('format')!r})")
        crit = f["critical/position"][()]
        if len(crit) == 0:
            sys.exit(f"{args.rollouts}: no trajectory")
        t = args.trajectory if args.trajectory is not None else int(np.argmax(crit >= 0)) if (crit >= 0).any() else 0
        if not 0 <= t < len(crit):
            sys.exit(f"--trajectory {t}: the file has {len(crit)} trajectories")
        paths = [os.path.join(out, f"{name}.trajectory{t}.png"), os.path.join(out, f"{name}.pass_at_k.png")]
        plot_trajectory(f, t, paths[0])
        plot_pass_at_k(f, paths[1])
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
