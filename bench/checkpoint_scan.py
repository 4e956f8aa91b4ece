"""How well does train-task validation pick checkpoints? Score every stored checkpoint of a run.

    python bench/checkpoint_scan.py --run-dir runs/bench_100_stage2/meld_two_stage \
        --out runs/scan.jsonl --plot runs/scan.png

For every checkpoint file (oldest first; keep them all with `--train-set keep_checkpoints=100000` in
bench/learn.py, or pass `--checkpoints DIR` with copies), run the trainer's validation
(`TrainConfig.validation_trials` trials on train tasks spread evenly over the list, acting as the
run's evaluations do; `--validation-trials` overrides) and a meta-test on the held-out tasks
(`--test-rounds` rounds). One
JSON line per checkpoint goes to `--out` (a rerun skips the checkpoints already there). Then the
trainer's best-checkpoint rule (highest last-episode validation success, ties to the newer) is
replayed over the scanned checkpoints, and one JSON line is printed: the checkpoint it picks with
its held-out figure, the correlation between validation and held-out success, and the mean held-out
success of all checkpoints (what picking one at random gives). `--plot` draws both curves. Not
part of CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, None where it is undefined (fewer than two points, or a constant)."""
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, help="the run (its config, tasks and env)")
    ap.add_argument("--checkpoints", help="folder of ckpt_*.pt files (default: the run's checkpoints/)")
    ap.add_argument("--validation-trials", type=int, help="default: the run's validation_trials, else 40")
    ap.add_argument("--test-rounds", type=int, default=5, help="held-out rounds per checkpoint")
    ap.add_argument("--out", required=True, help="JSON lines, one per checkpoint (appended; reruns skip)")
    ap.add_argument("--plot", help="PNG of validation and held-out success vs env steps")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from meld_core.train.evaluation import evaluate, validation_tasks
    from meld_core.train.setup import load_run_agent

    rd, cfg, _, env, agent = load_run_agent(args.run_dir)
    folder = Path(args.checkpoints) if args.checkpoints else rd.checkpoints_dir
    files = sorted(folder.glob("ckpt_*.pt"))
    if not files:
        print(f"checkpoint_scan: error: no ckpt_*.pt files in {folder}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    done = {r["ckpt"] for r in rows}
    n_val = args.validation_trials or cfg.train.validation_trials or 40
    E, det = cfg.train.episodes_per_trial, cfg.train.eval_deterministic  # as Trainer._validate and meld eval
    val_tasks = validation_tasks(env.train_tasks, n_val)
    try:
        for path in files:
            if path.name in done:
                continue
            state = rd.load_checkpoint(path)
            agent.load_state_dict(state["agent"])
            torch.manual_seed(0)  # the same filter noise for every checkpoint
            val = evaluate(agent, env, val_tasks, E, 1, cfg.model.reward_input, deterministic=det)
            test = evaluate(agent, env, list(env.eval_tasks), E, args.test_rounds, cfg.model.reward_input,
                            deterministic=det)
            row = {"ckpt": path.name, "env_steps": state["counters"]["env_steps"],
                   "val": val.success_per_position, "val_reached": val.reached_per_position,
                   "test": test.success_per_position}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    finally:
        env.close()

    rows.sort(key=lambda r: r["env_steps"])
    val = np.array([r["val"][-1] for r in rows])
    test = np.array([r["test"][-1] for r in rows])
    best = None
    for r in rows:  # the trainer's rule (Trainer._validate): ties go to the newer checkpoint
        if best is None or r["val"][-1] >= best["val"][-1]:
            best = r
    steps = np.array([r["env_steps"] for r in rows])
    if args.plot:
        from meld_core.train.media import plot_learning_curves

        plot_learning_curves(Path(args.plot), {f"validation ({n_val} train-task trials)": (steps, val),
                                               f"held-out ({args.test_rounds * len(env.eval_tasks)} trials)":
                                                   (steps, test)},
                             "env steps", f"episode-{E} success", "every checkpoint of the run", smooth=1)
    print(json.dumps({"bench": "checkpoint_scan", "run": str(rd.root), "checkpoints": len(rows),
                      "validation_trials": n_val, "picked": best,
                      "correlation": correlation(val, test),
                      "mean_test": round(float(test.mean()), 3), "newest": rows[-1]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
