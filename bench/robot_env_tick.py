"""Compute time of one robot-TaskEnv control tick (what agent_node spends besides waiting).

    MUJOCO_GL=egl python bench/robot_env_tick.py --steps 200

Runs RemoteRobotEnv over the simulated graph (SimGraphLink: SimRobot + ArmBridge on a virtual
clock), so the wall time of a step is the work a tick costs: freshness checks, image crop/resize and
stacking, forward kinematics and the insertion reward, the arm bridge's safety filter, plus the
simulation's own physics and rendering (reported separately). At 3.3 Hz a tick has 303 ms.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from meld_core.bridge.agent_run import family_facts, insertion_reward_fn
from meld_core.bridge.remote_env import RemoteEnvConfig, RemoteRobotEnv
from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
from meld_core.testing.sim_graph import SimGraphLink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    cfg = WidowXInsertionConfig(episode_length=args.steps)
    sim = WidowXInsertionEnv(cfg, seed=0)
    link = SimGraphLink(sim, cfg.control_hz)
    facts = family_facts(cfg)
    io = RemoteEnvConfig(control_hz=facts["control_hz"], episode_length=facts["episode_length"],
                         image_size=facts["image_size"], action_scale=facts["action_scale"])
    env = RemoteRobotEnv(io, link, facts["train_tasks"], facts["eval_tasks"], insertion_reward_fn(cfg))
    env.set_task(env.train_tasks[0])
    env.reset()
    rng = np.random.default_rng(0)
    sim_s = 0.0
    advance = link.robot.advance

    def timed_advance():
        nonlocal sim_s
        t0 = time.perf_counter()
        advance()
        link.robot.images()  # rendering happens on the first image request after a physics step
        sim_s += time.perf_counter() - t0

    link.robot.advance = timed_advance
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        env.step(rng.uniform(-1, 1, size=5))
        times.append(time.perf_counter() - t0)
    sim.close()
    ms = np.array(times) * 1000.0
    sim_ms = sim_s * 1000.0 / args.steps
    print(json.dumps({
        "bench": "robot_env_tick", "steps": args.steps, "tick_mean_ms": round(float(ms.mean()), 2),
        "tick_p95_ms": round(float(np.percentile(ms, 95)), 2), "sim_physics_render_mean_ms": round(sim_ms, 2),
        "tick_without_sim_mean_ms": round(float(ms.mean()) - sim_ms, 2),
        "control_period_ms": round(1000 / 3.3, 1),
    }))


if __name__ == "__main__":
    main()
