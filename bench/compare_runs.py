"""Learning curves of several runs in one plot: success of one episode of the trial vs env steps.

    python bench/compare_runs.py --out curve.png --episode 2 --target 0.9 \
        runs/bench_100_stage2/meld_two_stage="100 goals, seed 2" runs/bench_baseline/baseline=baseline

Each RUN is a run directory (its eval/history.jsonl, written by every periodic evaluation), optionally
followed by `=LABEL`; `--offset LABEL=STEPS` shifts a run's curve by the env steps collected before it
(a stage-2 run after its stage-1 runs, so that the x-axis is the recipe's total). Prints, per run, the
success pooled over windows of `--window` env steps (the periodic evaluations are few trials each, so
single points swing; pooled windows do not) and one JSON line with the same figures. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from meld_core.train.media import plot_learning_curves
from meld_core.train.rundir import RunDir


def pooled(steps: np.ndarray, success: np.ndarray, window: int) -> list[tuple[int, int, float, int]]:
    """(from, to, mean success, evaluations) per window of env steps that holds any evaluation."""
    out = []
    for lo in range(0, int(steps.max()) + 1, window):
        mask = (steps >= lo) & (steps < lo + window)
        if mask.any():
            out.append((lo, lo + window, float(success[mask].mean()), int(mask.sum())))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN[=LABEL]")
    ap.add_argument("--out", default="compare_runs.png")
    ap.add_argument("--episode", type=int, default=2, help="which episode of the trial (1-based)")
    ap.add_argument("--smooth", type=int, default=10, help="trailing mean of this many evaluations")
    ap.add_argument("--window", type=int, default=10_000, help="env steps per pooled window")
    ap.add_argument("--target", type=float, help="draw a dashed target line (e.g. 0.9)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--offset", action="append", default=[], metavar="LABEL=STEPS",
                    help="env steps collected before this run (repeatable)")
    args = ap.parse_args()
    offsets = {}
    for item in args.offset:
        name, _, steps = item.rpartition("=")
        if not name or not steps.isdigit():
            ap.error(f"--offset wants LABEL=STEPS, got {item!r}")
        offsets[name] = int(steps)

    curves, figures = {}, {}
    for spec in args.runs:
        path, _, label = spec.partition("=")
        label = label or Path(path).name
        rows = RunDir(path).eval_history()
        rows = [r for r in rows if len(r["success_per_position"]) >= args.episode]
        if not rows:
            print(f"compare_runs: error: {path} has no evaluations of episode {args.episode}",
                  file=sys.stderr)
            return 2
        steps = np.array([r["counters"]["env_steps"] for r in rows]) + offsets.get(label, 0)
        success = np.array([r["success_per_position"][args.episode - 1] for r in rows])
        curves[label] = (steps, success)
        windows = pooled(steps, success, args.window)
        figures[label] = {"run": path, "last_env_steps": int(steps[-1]), "offset": offsets.get(label, 0),
                          "pooled": [[lo, hi, round(m, 3), n] for lo, hi, m, n in windows]}
        print(f"{label}: " + " | ".join(f"{lo // 1000}-{hi // 1000}k {m:.0%} (n={n})"
                                        for lo, hi, m, n in windows))
    if set(offsets) - set(curves):
        ap.error(f"--offset names no run label: {sorted(set(offsets) - set(curves))}")
    title = args.title or f"episode-{args.episode} success on the held-out tasks"
    plot = plot_learning_curves(Path(args.out), curves, "env steps", f"episode-{args.episode} success", title,
                                smooth=args.smooth, target=args.target)
    print(json.dumps({"bench": "compare_runs", "episode": args.episode, "runs": figures, "plot": str(plot)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
