"""Scripted expert on the WidowX insertion env: success rate on held-out tasks and env steps/s.

    MUJOCO_GL=egl python bench/widowx_oracle.py                     # the 10 default held-out tasks
    MUJOCO_GL=egl python bench/widowx_oracle.py --num-tasks 100 --one-core

The oracle (meld_core.robot.oracle) knows the goal port: IK plus a joint-velocity servo through
the same action interface, control rate, safety filter and velocity quantum as the learner.
Speed: env.step() (physics, safety filter, reward, two camera renders) per wall-clock second and
per CPU second (all threads; on a shared machine the wall-clock figure mostly measures the
neighbours). Each
task runs one full episode (T steps); success = success flag at the last step (the plug stays
in). Checks that reward and success agree: sparse > 0 exactly when successful, and the plug is
in the goal port. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-tasks", type=int, default=None, help="held-out tasks (default: config's 10)")
    parser.add_argument("--task-seed", type=int, default=0)
    parser.add_argument("--episode-length", type=int, default=None)
    parser.add_argument("--one-core", action="store_true",
                        help="pin to one CPU core and one llvmpipe thread (set before rendering starts)")
    parser.add_argument("--verbose", action="store_true", help="one line per task")
    args = parser.parse_args()
    if args.one_core:
        os.environ["LP_NUM_THREADS"] = "1"
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    os.environ.setdefault("MUJOCO_GL", "egl")

    import numpy as np

    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
    from meld_core.robot.oracle import InsertionOracle

    cfg = WidowXInsertionConfig(task_seed=args.task_seed)
    if args.num_tasks is not None:
        cfg = dataclasses.replace(cfg, num_eval_tasks=args.num_tasks)
    if args.episode_length is not None:
        cfg = dataclasses.replace(cfg, episode_length=args.episode_length)
    env = WidowXInsertionEnv(cfg, seed=0)
    oracle = InsertionOracle(env.kinematics, cfg.control_hz, cfg.action_scale, cfg.velocity_quantum)

    successes, disagreements, first_success, wrong_port = 0, 0, [], 0
    step_time, step_cpu, oracle_time, steps = 0.0, 0.0, 0.0, 0
    for task in env.eval_tasks:
        env.set_task(task)
        env.reset()
        oracle.reset()
        first = None
        for t in range(cfg.episode_length):
            t0 = time.perf_counter()
            action = oracle.act(env.joint_state()[0], env.goal_port_pose())
            t1, c1 = time.perf_counter(), time.process_time()
            obs = env.step(action)
            step_time += time.perf_counter() - t1
            step_cpu += time.process_time() - c1  # CPU of all threads (llvmpipe renders in threads)
            oracle_time += t1 - t0
            steps += 1
            if (obs.sparse_reward > 0) != obs.success:
                disagreements += 1
            if obs.success and first is None:
                first = t + 1
        successes += int(obs.success)
        wrong_port += int(obs.info["inserted_port"] not in (-1, task.params["port"]))
        if first is not None:
            first_success.append(first)
        if args.verbose:
            print(f"{task.describe():60s} success={obs.success} first_step={first} "
                  f"lateral={obs.info['lateral_m'] * 1000:.2f}mm angle={obs.info['angle_deg']:.2f}deg "
                  f"dense={obs.dense_reward:.2f}")
    env.close()
    n = len(env.eval_tasks)
    result = {
        "bench": "widowx_oracle", "tasks": n, "success_rate": successes / n,
        "reward_success_disagreements": disagreements, "wrong_port_insertions": wrong_port,
        "median_first_success_step": float(np.median(first_success)) if first_success else None,
        "env_steps_per_s": steps / step_time, "env_steps_per_cpu_s": steps / step_cpu,
        "oracle_ms_per_step": 1000 * oracle_time / steps,
        "episode_length": cfg.episode_length, "image_size": cfg.image_size,
        "mujoco_gl": os.environ.get("MUJOCO_GL"), "one_core": args.one_core,
        "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
    }
    print(f"success {successes}/{n} ({100 * successes / n:.0f}%), "
          f"{result['env_steps_per_s']:.0f} env steps/s with rendering, "
          f"reward/success disagreements {disagreements}")
    print(json.dumps(result))
    return 0 if successes / n >= 0.95 and disagreements == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
