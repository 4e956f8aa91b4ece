"""What does episode 2 do once episode 1 has found the goal? A probe of a point_nav run's memory.

    python bench/point_nav_memory.py --run-dir runs/bench_stage2/meld_two_stage

For goals every `--step` degrees along the semicircle (so train goals, held-out goals and goals in
between), episode 1 is scripted: the robot waits at the start, then drives straight to the goal so
that it arrives by frame `--arrive` (several values: early, midway, at the last frame) and stays
there, while the posterior sees the sparse reward as it would at test time. Episode 2 is the agent's
own (policy mean). Printed: per goal and arrival frame, the angle where episode 2 ended and whether it
succeeded, next to the nearest train goal; then one JSON line with the episode-2 success rate and the
mean angular error, split into goals near a train goal and goals between train goals.

An agent that inferred the goal ends episode 2 at the goal it was shown; one that memorised its train
goals ends at the nearest train goal instead (the failure this probe was written to expose). Not part
of CI.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, help="a point_nav run directory (its latest checkpoint)")
    ap.add_argument("--checkpoint", help="checkpoint file (default: the run's latest)")
    ap.add_argument("--step", type=float, default=10.0, help="degrees between probed goals")
    ap.add_argument("--arrive", default="6,12,20",
                    help="comma list of frames by which episode 1 reaches the goal")
    ap.add_argument("--near", type=float, default=5.0,
                    help="a goal within this many degrees of a train goal counts as near it")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from meld_core.envs.base import Task
    from meld_core.train.rollout import posterior_reward
    from meld_core.train.rundir import CheckpointError, RunDirError
    from meld_core.train.setup import load_run_agent

    torch.manual_seed(args.seed)
    try:
        rd, config, state, env, agent = load_run_agent(args.run_dir, checkpoint=args.checkpoint)
    except (RunDirError, CheckpointError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if config.env != "point_nav":
        env.close()
        print(f"{rd.root} trained {config.env!r}; this probe is for point_nav", file=sys.stderr)
        return 2
    T, step_len = env.spec.episode_length, env.config.max_step
    radius = env.config.goal_radius
    reward_input = config.model.reward_input
    train_angles = np.array([float(t.params["angle_deg"]) for t in env.train_tasks])
    arrivals = [int(a) for a in args.arrive.split(",")]
    if any(not 1 <= a <= T for a in arrivals):
        env.close()
        print(f"--arrive frames must lie in 1..{T}", file=sys.stderr)
        return 2
    travel = math.ceil(radius / step_len)  # frames to reach the arc (per-axis steps of max_step)

    def trial(angle: float, arrive: int) -> tuple[float, bool]:
        goal = radius * np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        env.set_task(Task(index=0, split="eval", params={"angle_deg": angle, "goal_x": float(goal[0]),
                                                         "goal_y": float(goal[1])}))
        agent.reset_belief()
        obs, prev = env.reset(), None
        for t in range(T + 1):  # episode 1: scripted, filtered
            r = 0.0 if t == 0 else posterior_reward(obs, reward_input)
            agent.observe(obs.image, r, episode_start=(t == 0), prev_action=prev)
            pos = np.array(obs.info["joint_positions"])
            a = np.clip((goal - pos) / step_len, -1.0, 1.0) if t >= arrive - travel and t < T else np.zeros(2)
            prev = a.astype(np.float32)
            if t < T:
                obs = env.step(prev)
        obs = env.reset()
        for t in range(T + 1):  # episode 2: the agent's own
            r = 0.0 if t == 0 else posterior_reward(obs, reward_input)
            a = agent.act(obs.image, r, episode_start=(t == 0), deterministic=True,
                          prev_action=prev if t == 0 else None)
            if t < T:
                obs = env.step(a)
        x, y = obs.info["joint_positions"]
        return math.degrees(math.atan2(y, x)), bool(obs.success)

    angles = np.arange(args.step / 2, 180.0, args.step)
    rows: dict[int, list[dict]] = {a: [] for a in arrivals}
    print(f"{'goal':>6} {'train':>6}  " + "  ".join(f"arrive {a:>2}: end" for a in arrivals))
    for angle in angles:
        nearest = float(train_angles[np.argmin(np.abs(train_angles - angle))])
        cells = []
        for a in arrivals:
            end, ok = trial(float(angle), a)
            rows[a].append({"goal": float(angle), "nearest_train": nearest, "end": end, "success": ok})
            cells.append(f"{end:13.0f} {'S' if ok else '-'}")
        print(f"{angle:6.0f} {nearest:6.0f}  " + "  ".join(cells))
    env.close()

    summary = {}
    for a, rs in rows.items():
        near = [r for r in rs if abs(r["goal"] - r["nearest_train"]) <= args.near]
        far = [r for r in rs if abs(r["goal"] - r["nearest_train"]) > args.near]
        summary[f"arrive_{a}"] = {
            group: {"goals": len(g), "success_ep2": round(float(np.mean([r["success"] for r in g])), 3),
                    "mean_abs_error_deg": round(float(np.mean([abs(r["end"] - r["goal"]) for r in g])), 1)}
            for group, g in (("all", rs), ("near_train_goal", near), ("between_train_goals", far)) if g}
    print(json.dumps({"bench": "point_nav_memory", "run_dir": str(rd.root), "env_steps":
                      state["counters"].get("env_steps"), "train_goals": len(train_angles),
                      "step_deg": args.step, "results": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
