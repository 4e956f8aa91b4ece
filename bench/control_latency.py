"""Control-loop latency: `MeldAgent.act()` (filter step + policy, batch 1), alone or beside a running learner.

    python bench/control_latency.py                         # reference model, 128x64, CPU
    python bench/control_latency.py --size small --calls 500 --act-bf16 off
    MUJOCO_GL=egl python bench/control_latency.py --paced --with-learner --minutes 30

The 3.3 Hz control loop leaves 303 ms per tick for everything (cameras, safety, act). Default: `--calls`
back-to-back act() calls on random images, trials of 41 frames with a belief reset at each trial start.
`--act-bf16` picks act()'s encoder precision (auto: bf16 where the CPU has it natively, as
DeviceConfig.act_bf16).

`--paced`: the actor's real loop instead: a simulated WidowX (MuJoCo, the robot's two cameras) stepped at
the control rate for `--minutes`, act() on every frame; a tick overruns when its work (env step + act)
takes longer than the control period, the rule RemoteRobotEnv applies on the robot.
`--with-learner`: a learner process does model and actor-critic steps at `--learner-size` the whole time,
placed as async mode places it (its own core, sleeping OpenMP threads; the actor on the first core with
DeviceConfig.actor_threads threads; `--no-pin` shares the cores instead). Its step rate is measured alone
first (`--learner-alone-s`), then while the actor runs: `learner_rate_ratio` is with-actor / alone.

Prints one JSON line: p50/p99/max of act() (wall and thread CPU ms), overruns, `load_avg_1min`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learner_throughput import SIZES, synthetic_batch  # noqa: E402

from meld_core.algo.agent import MeldAgent  # noqa: E402
from meld_core.algo.runtime import openmp_env, pin_to, plan_cpus  # noqa: E402
from meld_core.config import DeviceConfig  # noqa: E402

BUDGET_MS = 1000 / 3.3


def learner_load(size: str, seconds: float, out: str, cpus: str) -> None:
    """Model and AC steps, alternating, for `seconds` on `cpus`; each pair's end time goes to `out`."""
    cores = tuple(int(c) for c in cpus.split(","))
    pin_to(cores, len(cores))
    spec = SIZES[size]
    agent = MeldAgent(spec["model"], spec["sac"], spec["action_dim"],
                      DeviceConfig(device="cpu", num_threads=torch.get_num_threads()), seed=0)
    rng = np.random.default_rng(0)
    shape, a, frames = spec["model"].image_shape, spec["action_dim"], spec["frames"]
    model_batch = synthetic_batch(rng, spec["model_trials"], frames, shape, a, frames).to_torch("cpu")
    pool = synthetic_batch(rng, spec["pool_trials"], frames, shape, a, frames).to_torch("cpu")
    agent.update_model(model_batch)
    ends = [time.time()]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        agent.update_model(model_batch)
        agent.update_actor_critic(pool)
        ends.append(time.time())
        Path(out).write_text(json.dumps(ends))


def rate(ends: list[float], t0: float, t1: float) -> float | None:
    """Model+AC step pairs per second completed within [t0, t1] (from the first to the last end inside)."""
    inside = [t for t in ends if t0 <= t <= t1]
    if len(inside) < 2:
        return None
    return (len(inside) - 1) / (inside[-1] - inside[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--size", choices=sorted(SIZES), default="reference")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--threads", type=int, default=None, help="torch threads of act() (default: torch's; "
                   "with --with-learner: DeviceConfig.actor_threads)")
    p.add_argument("--act-bf16", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--paced", action="store_true",
                   help="the actor's loop: a simulated WidowX at the control rate")
    p.add_argument("--minutes", type=float, default=2.0, help="--paced: duration")
    p.add_argument("--with-learner", action="store_true", help="a learner process runs beside the actor")
    p.add_argument("--learner-size", choices=sorted(SIZES), default="reference")
    p.add_argument("--learner-alone-s", type=float, default=120.0, help="learner rate measured alone first")
    p.add_argument("--no-pin", action="store_true", help="--with-learner: share the cores (no affinity)")
    p.add_argument("--learner-load", nargs=3, metavar=("SECONDS", "OUT", "CPUS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.learner_load:
        seconds, out, cpus = args.learner_load
        learner_load(args.learner_size, float(seconds), out, cpus)
        return

    device_cfg = DeviceConfig(device=args.device, channels_last=not args.no_channels_last,
                              act_bf16={"auto": None, "on": True, "off": False}[args.act_bf16])
    spec = SIZES[args.size]
    sim = widowx_env(spec) if args.paced else None  # before the learner: a wrong --size stops here
    learner = None
    learner_out = Path(f"/tmp/control_latency_learner_{os.getpid()}.json")
    plan = plan_cpus(device_cfg.actor_threads, None, pin=not args.no_pin)
    if args.with_learner:
        actor_s = args.minutes * 60 if args.paced else 600.0
        env = {**os.environ, **openmp_env(plan.learner_threads)}
        cmd = [sys.executable, __file__, "--learner-size", args.learner_size, "--learner-load",
               str(args.learner_alone_s + actor_s + 60), str(learner_out),
               ",".join(map(str, plan.learner_cpus))]
        learner = subprocess.Popen(cmd, env=env)
        pin_to(plan.actor_cpus, args.threads or plan.actor_threads)
        alone_start = time.time()
        time.sleep(args.learner_alone_s)
    elif args.threads:
        torch.set_num_threads(args.threads)

    # --paced: the agent acts with the WidowX's joints (the reference sizes are the Sawyer's 7; the
    # safety filter would zero every 7-number command and the arm would never move)
    action_dim = sim.spec.action_dim if sim is not None else spec["action_dim"]
    agent = MeldAgent(spec["model"], spec["sac"], action_dim, device_cfg, seed=0)
    actor_start = time.time()
    try:
        if args.paced:
            stats = paced_loop(agent, sim, args.minutes)
        else:
            stats = back_to_back(agent, spec, args.calls)
    finally:
        actor_end = time.time()
        if learner is not None:
            learner.terminate()
            learner.wait(timeout=60)
    line = {"bench": "control_latency", "device": str(agent.device), "size": args.size,
            "image_shape": list(spec["model"].image_shape), "act_precision": agent.act_precision,
            "threads": torch.get_num_threads(), **stats, "budget_ms": round(BUDGET_MS, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2)}
    if learner is not None:
        ends = json.loads(learner_out.read_text()) if learner_out.is_file() else []
        learner_out.unlink(missing_ok=True)
        alone, beside = rate(ends, alone_start, actor_start), rate(ends, actor_start, actor_end)
        line.update(learner_size=args.learner_size, pinned=not args.no_pin,
                    actor_cpus=list(plan.actor_cpus), learner_cpus=list(plan.learner_cpus),
                    learner_steps_per_s_alone=alone and round(alone, 4),
                    learner_steps_per_s_with_actor=beside and round(beside, 4),
                    learner_rate_ratio=round(beside / alone, 3) if alone and beside else None)
    print(json.dumps(line))


def summary(wall: list[float], cpu: list[float]) -> dict:
    ms, cms = np.array(wall) * 1e3, np.array(cpu) * 1e3
    return {"calls": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 3),
            "cpu_p50_ms": round(float(np.percentile(cms, 50)), 3),
            "cpu_p99_ms": round(float(np.percentile(cms, 99)), 3)}


def back_to_back(agent: MeldAgent, spec: dict, calls: int) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, *spec["model"].image_shape), dtype=np.uint8)
    frames = spec["frames"]
    wall, cpu = [], []
    for i in range(calls + 20):
        t = i % frames
        if t == 0:
            agent.reset_belief()
        t0, c0 = time.perf_counter(), time.thread_time()
        agent.act(images[i % 16], float(rng.normal()), episode_start=t == 0)
        if i >= 20:  # warm-up calls are not counted
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    return summary(wall, cpu)


def widowx_env(spec: dict):
    """The simulated WidowX of --paced (default config: the robot's two 64x64 cameras)."""
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv

    env = WidowXInsertionEnv(WidowXInsertionConfig(), seed=0)
    if tuple(env.spec.image_shape) != tuple(spec["model"].image_shape):
        env.close()
        raise SystemExit(f"--paced needs a model for {env.spec.image_shape} images (--size reference)")
    return env


def paced_loop(agent: MeldAgent, env, minutes: float) -> dict:
    """Trials on a simulated WidowX at the control rate; overruns counted as RemoteRobotEnv counts them."""
    cfg = env.config
    period = 1.0 / cfg.control_hz
    wall, cpu, ticks, overruns, worst_tick = [], [], 0, 0, 0.0
    deadline = time.monotonic() + minutes * 60
    try:
        while time.monotonic() < deadline:
            env.set_task(env.train_tasks[ticks % len(env.train_tasks)])
            agent.reset_belief()
            obs = env.reset()
            anchor = time.monotonic()
            for t in range(cfg.episode_length + 1):
                t0, c0 = time.perf_counter(), time.thread_time()
                action = agent.act(obs.image, 0.0 if t == 0 else obs.dense_reward, episode_start=t == 0)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
                if t == cfg.episode_length:
                    break
                obs = env.step(action)
                now = time.monotonic()
                worst_tick = max(worst_tick, now - anchor)
                ticks += 1
                if now > anchor + period:
                    overruns += 1
                    anchor = now
                else:
                    time.sleep(anchor + period - now)
                    anchor += period
    finally:
        env.close()
    return {**summary(wall, cpu), "ticks": ticks, "overruns": overruns,
            "worst_tick_work_ms": round(worst_tick * 1e3, 1), "minutes": minutes}


if __name__ == "__main__":
    main()
