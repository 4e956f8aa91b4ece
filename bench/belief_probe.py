"""What does a trained agent's belief encode? Linear probes of the belief against the simulator's truth.

    python bench/belief_probe.py --run-dir runs/bench_wx/meld_dense --trials 60 [--checkpoint best]

Runs `--trials` two-episode trials (policy mean, the posterior seeing the run's own reward input) on
the run's train tasks, records the belief [z1 mean, z1 std, z2 mean, z2 std] at every frame and the
truth from the simulator, then fits ridge regressions (and a one-vs-rest ridge classifier for the
goal port / goal direction) on half of the trials and scores them on the other half:

- widowx_insertion: plug-tip position (x, y, z), router rotation and translation, goal port;
- point_nav: robot position (x, y), goal position (x, y).

Probes are scored at three moments of the trial: every frame of episode 1, the reset frame of
episode 2 (what survived the reset) and the last frame of episode 2. A belief that encodes the goal
only after the reward revealed it shows up as goal accuracy near chance in early episode 1 and high
at the start of episode 2. Prints a table and one JSON line. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def truth(env, task, info: dict) -> dict[str, float]:
    """What the probe tries to read out of the belief, from the simulator's state."""
    if env.spec.name == "widowx_insertion":
        tip = env.plug_pose()[:3, 3]
        return {"plug_x": tip[0], "plug_y": tip[1], "plug_z": tip[2],
                "rotation_deg": task.params["rotation_deg"], "translation_mm": task.params["translation_mm"],
                "goal_class": task.params["port"]}
    angle = np.degrees(np.arctan2(task.params["goal_y"], task.params["goal_x"]))
    return {"robot_x": info["x"], "robot_y": info["y"], "goal_x": task.params["goal_x"],
            "goal_y": task.params["goal_y"], "goal_class": int(np.clip(angle // 30, 0, 5))}  # 6 sectors


def collect(agent, env, tasks, trials: int, reward_input: str, rng: np.random.Generator):
    from meld_core.train.rollout import posterior_reward

    rows = []
    T = env.spec.episode_length
    for trial in range(trials):
        task = tasks[int(rng.integers(len(tasks)))]
        env.set_task(task)
        agent.reset_belief()
        for position in range(2):
            obs = env.reset()
            for t in range(T + 1):
                r = 0.0 if t == 0 else posterior_reward(obs, reward_input)
                action = agent.act(obs.image, r, episode_start=(t == 0), deterministic=True)
                rows.append({"trial": trial, "position": position, "t": t, "belief": agent.belief(),
                             **truth(env, task, obs.info)})
                if t < T:
                    obs = env.step(action)
    return rows


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1e-2) -> np.ndarray:
    x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    return np.linalg.solve(x1.T @ x1 + lam * np.eye(x1.shape[1]), x1.T @ y)


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1) @ w


def scores(rows, fit_mask, test_mask, targets) -> dict[str, float]:
    x = np.stack([r["belief"] for r in rows])
    mu, sd = x[fit_mask].mean(0), x[fit_mask].std(0) + 1e-6
    x = (x - mu) / sd
    out = {}
    for name in targets:
        y = np.array([r[name] for r in rows], dtype=float)
        w = ridge(x[fit_mask], y[fit_mask])
        resid = y[test_mask] - predict(w, x[test_mask])
        out[f"r2_{name}"] = float(1 - resid.var() / max(y[test_mask].var(), 1e-12))
    classes = np.array([r["goal_class"] for r in rows])
    onehot = (classes[:, None] == np.unique(classes)[None]).astype(float)
    w = ridge(x[fit_mask], onehot[fit_mask])
    guess = np.unique(classes)[predict(w, x[test_mask]).argmax(1)]
    out["goal_accuracy"] = float((guess == classes[test_mask]).mean())
    out["goal_chance"] = float(np.bincount(classes[test_mask]).max() / test_mask.sum())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--checkpoint", default=None, help="'best', 'latest' (default) or a file")
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    from meld_core.train.setup import load_run_agent

    torch.set_num_threads(1)
    _, config, state, env, agent = load_run_agent(args.run_dir, checkpoint=args.checkpoint, device="cpu")
    try:
        rows = collect(agent, env, list(env.train_tasks), args.trials, config.model.reward_input,
                       np.random.default_rng(args.seed))
    finally:
        env.close()
    T = env.spec.episode_length
    targets = [k for k in rows[0] if k not in ("trial", "position", "t", "belief", "goal_class")]
    fit_trial = np.array([r["trial"] % 2 == 0 for r in rows])
    moments = {
        "episode 1, every frame": np.array([r["position"] == 0 for r in rows]),
        "episode 1, last frame": np.array([r["position"] == 0 and r["t"] == T for r in rows]),
        "episode 2, reset frame": np.array([r["position"] == 1 and r["t"] == 0 for r in rows]),
        "episode 2, last frame": np.array([r["position"] == 1 and r["t"] == T for r in rows]),
    }
    table = {}
    for name, mask in moments.items():
        table[name] = {k: round(v, 3) for k, v in scores(rows, mask & fit_trial, mask & ~fit_trial,
                                                          targets).items()}
        print(f"{name:24s} " + "  ".join(f"{k} {v:+.2f}" for k, v in table[name].items()))
    print(json.dumps({"bench": "belief_probe", "run_dir": args.run_dir,
                      "checkpoint": args.checkpoint or "latest", "env_steps": state["counters"]["env_steps"],
                      "reward_input": config.model.reward_input, "trials": args.trials, "probes": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
