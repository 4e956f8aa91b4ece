"""What the critic expects of episode 2's routes: the value of the belief along the agent's own route
and along scripted routes into each port, after the agent's episode 1.

    MUJOCO_GL=egl python bench/route_values.py --run-dir models/widowx_insertion --goal-port 0
    MUJOCO_GL=egl python bench/route_values.py --run-dir runs/wx_sparse --checkpoint best --tasks 20

For held-out tasks (those whose goal is `--goal-port`; all with -1) the agent runs episode 1 (policy
mean, its posterior seeing the run's reward input), then episode 2 is run several times from the
same belief: once with the agent acting, and once per port with the scripted expert
(`meld_core.robot.oracle`) driving the plug into that port while a copy of the agent's posterior
observes the frames, the actions and the reward. Along each route it records the critic's value of
the belief, V(b_t) = min of the twin Q(b_t, policy mean at b_t) (the entropy term left out), and
Q(b_t, a_t) of the action the route took; and the model's prediction of the dense reward at the
posterior sample beside the env's dense reward (which needs the goal port: where the two agree before
the plug has entered the goal, the belief knows the goal).

Why: with a sparse reward the one-step TD target moves a route's value back one frame per round of
policy improvement along it. After a miss in episode 1 the port that pays is often one the agent's
search never tried; whether the critic values the expert's route into it above its own route, and
from how far out, says whether the critic or the actor is what keeps the agent from going there.
The last line is one JSON object: per route, the mean V, Q, predicted and true dense reward at every
frame of episode 2, its success, and the frame its plug first entered the route's port.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np


def route_name(port: int | None) -> str:
    return "agent" if port is None else f"port_{port}"


def route(env: Any, agent: Any, reward_input: str, port: int | None, oracle: Any) -> dict[str, Any]:
    """Episode 2 from the agent's current belief: the agent acting (`port` None) or the expert into
    `port`, the agent's posterior observing. Returns V and Q per frame, success and first entry."""
    import torch

    from meld_core.train.rollout import posterior_reward

    values, qs, predicted, dense, entry = [], [], [], [], None
    obs = env.reset()
    oracle.reset()
    target = env.rig.port_pose(env.goal, port) if port is not None else None
    prev = None
    for t in range(env.spec.episode_length + 1):
        r = 0.0 if t == 0 else posterior_reward(obs, reward_input)
        if port is None:
            action = agent.act(obs.image, r, episode_start=(t == 0), deterministic=True)
        else:
            agent.observe(obs.image, r, episode_start=(t == 0), prev_action=prev)
            action = np.asarray(oracle.act(env.joint_state()[0], target), np.float32)
        with torch.inference_mode():
            belief = torch.as_tensor(agent.policy_input())[None]
            mean = agent.sac.actor(belief, deterministic=True)
            values.append(float(torch.min(*agent.sac.critic(belief, mean))))
            qs.append(float(torch.min(*agent.sac.critic(belief, torch.as_tensor(action)[None]))))
        predicted.append(agent.predicted_reward()[0])
        dense.append(0.0 if t == 0 else float(obs.dense_reward))
        if entry is None and int(obs.info.get("inserted_port", -1)) == (port if port is not None else
                                                                          env.goal.port):
            entry = t
        if t < env.spec.episode_length:
            obs = env.step(action)
            prev = torch.as_tensor(action)[None]
    return {"v": values, "q": qs, "predicted_dense": predicted, "dense": dense, "success": bool(obs.success),
            "entry": entry}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--checkpoint", default="latest", help="best, latest or a checkpoint file")
    ap.add_argument("--goal-port", type=int, default=0, help="held-out tasks with this goal port (-1: all)")
    ap.add_argument("--tasks", type=int, default=10, help="at most this many tasks")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from port_search import load_widowx_agent, port_entries

    config, state, env, agent = load_widowx_agent(args.run_dir, args.checkpoint, args.threads, "route_values")
    from meld_core.robot.oracle import InsertionOracle
    from meld_core.train.rollout import run_trial

    reward_input = config.model.reward_input
    cfg = env.config
    oracle = InsertionOracle(env.kinematics, cfg.control_hz, cfg.action_scale, cfg.velocity_quantum)
    tasks = [t for t in env.eval_tasks if args.goal_port < 0 or int(t.params["port"]) == args.goal_port]
    tasks = tasks[:args.tasks]
    if not tasks:
        raise SystemExit(f"no held-out task has goal port {args.goal_port}")
    ports: list[int | None] = [None, *range(cfg.num_ports)]  # None: the agent's own route
    routes: dict[int | None, list[dict[str, Any]]] = {p: [] for p in ports}
    ep1_success, ep1_ports = [], []
    try:
        for task in tasks:
            trial = run_trial(env, task, 1, agent=agent, reward_input=reward_input, deterministic=True)
            ep1_success.append(trial.episodes[0].success)
            ep1_ports.append(port_entries(trial.episodes[0])[0])
            after_episode_1 = agent.save_belief()
            for port in ports:
                agent.restore_belief(after_episode_1)
                record = route(env, agent, reward_input, port, oracle)
                routes[port].append({**record, "goal": int(task.params["port"])})
    finally:
        env.close()

    def summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
        entries = [r["entry"] for r in rs if r["entry"] is not None]

        def mean(key: str) -> list[float]:
            return [round(float(x), 3) for x in np.mean([r[key] for r in rs], axis=0)]

        return {"v": mean("v"), "q": mean("q"), "predicted_dense": mean("predicted_dense"),
                "dense": mean("dense"),
                "success": float(np.mean([r["success"] for r in rs])),
                "first_entry_mean": float(np.mean(entries)) if entries else None}

    def before_entry(rs: list[dict[str, Any]]) -> dict[str, Any]:
        """Means at the frame before the plug entered the route's port: what the belief expects there."""
        at = [(r["v"][r["entry"] - 1], r["predicted_dense"][r["entry"] - 1], r["dense"][r["entry"] - 1])
              for r in rs if r["entry"]]
        v, predicted, dense = np.mean(at, axis=0) if at else (None, None, None)
        return {"routes": len(at), "v": v, "predicted_dense": predicted, "dense": dense}

    expert = [(port, r) for port in ports if port is not None for r in routes[port]]
    out = {"bench": "route_values", "run_dir": args.run_dir, "checkpoint": args.checkpoint,
           "env_steps": state["counters"]["env_steps"], "goal_port": args.goal_port, "tasks": len(tasks),
           "episode_1_success": float(np.mean(ep1_success)), "episode_1_ports_entered": ep1_ports,
           "routes": {route_name(p): summary(rs) for p, rs in routes.items()},
           # the frame before the expert's plug enters the goal port, and another port
           "before_entry_goal": before_entry([r for port, r in expert if port == r["goal"]]),
           "before_entry_other": before_entry([r for port, r in expert if port != r["goal"]])}
    for n in map(route_name, ports):
        s = out["routes"][n]
        v = s["v"]
        print(f"{n:8s} success {s['success']:.2f} entry {s['first_entry_mean']}  V at t=0,5,10,20,30,40: "
              + " ".join(f"{v[t]:.2f}" for t in (0, 5, 10, 20, 30, 40) if t < len(v)), file=sys.stderr)
    for key in ("before_entry_goal", "before_entry_other"):
        b = out[key]
        if b["routes"]:
            print(f"{key}: V {b['v']:.2f}, predicted dense {b['predicted_dense']:.2f}, true {b['dense']:.2f} "
                  f"({b['routes']} routes)", file=sys.stderr)
    print(json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
