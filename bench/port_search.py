"""How a WidowX insertion agent searches for the goal port: which ports the plug enters, episode by episode.

    MUJOCO_GL=egl python bench/port_search.py --run-dir models/widowx_insertion --rounds 10
    MUJOCO_GL=egl python bench/port_search.py --run-dir runs/wx_sparse --checkpoint latest --stochastic

Meta-tests a checkpoint on the run's held-out tasks (as `meld eval`, the posterior seeing the run's reward
input; `--tasks train`: on its train tasks instead, to choose a setting such as `--stochastic` without
looking at the held-out tasks) and reads, at every step of its episodes, the port the plug tip is
inside (the env's `inserted_port` in the frame infos the evaluation keeps: lateral, depth and angle
within the success tolerances of that port). An episode's *visits* are those ports in the order
entered (a port entered twice in a row counts once), with the step of each entry.

What a Bayes-optimal searcher with the sparse reward does: episode 1 enters ports one after another
until one pays and stays there; episode 2 goes straight to the port that paid (or tries the ports
episode 1 did not). The JSON line tells how far an agent is from that, per episode position: success,
ports entered (mean, share with 2 or more, share with none), the step of the first entry and the steps
between entries (how fast it searches), the first port entered (a histogram), success per goal port,
and for episode 2 whether it enters first the port episode 1 succeeded in and whether it re-enters
ports that did not pay in episode 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import Any

import numpy as np


def port_entries(episode: Any) -> tuple[list[int], list[int]]:
    """The ports an evaluated episode's plug entered, in order (a port entered twice in a row counts
    once), and the step of each entry, from the env's info of every frame (frame 0: the reset)."""
    visits: list[int] = []
    steps: list[int] = []
    for t, info in enumerate(episode.infos[1:], start=1):
        port = int(info.get("inserted_port", -1))
        if port >= 0 and (not visits or visits[-1] != port):
            visits.append(port)
            steps.append(t)
    return visits, steps


def trial_records(result: Any) -> list[list[dict[str, Any]]]:
    """Per trial, per episode: goal port, ports entered, entry steps and success (at the last frame)."""
    records = []
    for trial in result.trials:
        goal = int(trial.task.params["port"])
        records.append([dict(zip(("visits", "entry_steps"), port_entries(ep)), goal=goal, success=ep.success)
                        for ep in trial.episodes])
    return records


def summarise(trials: list[list[dict[str, Any]]], per_trial: int, num_ports: int) -> dict[str, Any]:
    out: dict[str, Any] = {"trials": len(trials)}
    for k in range(per_trial):
        eps = [t[k] for t in trials]
        distinct = [len(set(e["visits"])) for e in eps]
        gaps = [b - a for e in eps for a, b in zip(e["entry_steps"], e["entry_steps"][1:])]
        firsts = [e["entry_steps"][0] for e in eps if e["entry_steps"]]
        by_goal = {g: [e["success"] for e in eps if e["goal"] == g] for g in range(num_ports)}
        row: dict[str, Any] = {
            "success": float(np.mean([e["success"] for e in eps])),
            "ports_entered_mean": float(np.mean(distinct)),
            "share_entering_2_or_more": float(np.mean([d >= 2 for d in distinct])),
            "share_entering_none": float(np.mean([d == 0 for d in distinct])),
            "first_entry_step_mean": float(np.mean(firsts)) if firsts else None,
            "steps_between_entries_mean": float(np.mean(gaps)) if gaps else None,
            "first_port": dict(sorted(Counter(e["visits"][0] if e["visits"] else -1 for e in eps).items())),
            "success_by_goal_port": {g: (round(float(np.mean(s)), 3), len(s)) for g, s in by_goal.items()
                                     if s},
        }
        if k > 0:
            prev = [t[k - 1] for t in trials]
            found = [(p, e) for p, e in zip(prev, eps) if p["success"]]
            missed = [(p, e) for p, e in zip(prev, eps) if not p["success"]]
            row["after_a_success_first_port_is_that_port"] = (
                float(np.mean([bool(e["visits"]) and e["visits"][0] == p["goal"] for p, e in found]))
                if found else None)
            row["after_a_miss_reenters_a_port_that_did_not_pay"] = (
                float(np.mean([bool(set(e["visits"]) & set(p["visits"])) for p, e in missed]))
                if missed else None)
            row["success_after_success"] = float(np.mean([e["success"] for _, e in found])) if found else None
            row["success_after_miss"] = float(np.mean([e["success"] for _, e in missed])) if missed else None
        out[f"episode_{k + 1}"] = row
    return out


def load_widowx_agent(run_dir: str, checkpoint: str, threads: int, bench: str) -> tuple[Any, ...]:
    """(config, checkpoint state, env, agent) of a widowx_insertion run, torch on `threads` threads; the
    caller closes the env."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    from meld_core.train.setup import load_run_agent

    torch.set_num_threads(threads)
    _, config, state, env, agent = load_run_agent(run_dir, checkpoint=checkpoint, device="cpu")
    if config.env != "widowx_insertion":
        env.close()
        raise SystemExit(f"{run_dir} is a {config.env} run; {bench} needs widowx_insertion")
    return config, state, env, agent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--checkpoint", default="best", help="best, latest or a checkpoint file")
    ap.add_argument("--rounds", type=int, default=10, help="trials per task")
    ap.add_argument("--tasks", choices=("held-out", "train"), default="held-out",
                    help="the run's held-out tasks (a meta-test) or its train tasks (to choose a setting "
                         "without looking at the held-out ones)")
    ap.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy mean")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    config, state, env, agent = load_widowx_agent(args.run_dir, args.checkpoint, args.threads, "port_search")
    from meld_core.train.evaluation import evaluate

    try:
        per_trial = config.train.episodes_per_trial
        tasks = env.eval_tasks if args.tasks == "held-out" else env.train_tasks
        result = evaluate(agent, env, list(tasks), per_trial, args.rounds, config.model.reward_input,
                          deterministic=not args.stochastic)
        figures = summarise(trial_records(result), per_trial, env.config.num_ports)
    finally:
        env.close()
    figures = {"bench": "port_search", "run_dir": args.run_dir, "checkpoint": args.checkpoint,
               "env_steps": state["counters"]["env_steps"], "reward_input": config.model.reward_input,
               "tasks": args.tasks, "deterministic": not args.stochastic, **figures}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
