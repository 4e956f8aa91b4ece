"""Safety filter cost: p50/p99 of `SafetyFilter.filter` per call, as the arm bridge runs it at 20 Hz.

    python bench/safety_filter.py
    python bench/safety_filter.py --calls 2000 --speed 0.4

Commands are uniform in +-speed x each joint's velocity limit at random poses with the plug tip
inside the workspace box, a third of them within 3 mm of a wall (where the workspace rule works
hardest). `cpu_ms_per_call` and `load_avg_1min` tell a busy machine from a slow one. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from meld_core.robot.profile import RobotProfile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--speed", type=float, default=1.0, help="fraction of the velocity limits (1: full speed)")
    args = p.parse_args()
    profile = RobotProfile.load()
    safety = profile.safety_filter()
    cfg, kin = safety.config, safety.kin
    lo = np.array(cfg.lower) + cfg.limit_margin
    hi = np.array(cfg.upper) - cfg.limit_margin
    rng = np.random.default_rng(0)
    qs = rng.uniform(lo, hi, (200_000, 5))
    tips = kin.positions(qs, cfg.workspace_link)
    clearance = np.min(np.concatenate([tips - cfg.workspace_min, cfg.workspace_max - tips], axis=1), axis=1)
    n_near = args.calls // 3
    poses = np.concatenate([qs[clearance >= 0][: args.calls - n_near],
                            qs[(clearance >= 0) & (clearance <= 0.003)][:n_near]])
    commands = rng.uniform(-1, 1, (args.calls, 5)) * np.array(cfg.velocity_limits) * args.speed
    times, cpu, changed = [], [], 0
    for q, qdot in zip(poses, commands):
        t0, c0 = time.perf_counter(), time.process_time()
        out = safety.filter(q, qdot)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        changed += any(e.startswith("workspace") for e in out.events)
    ms = np.array(times) * 1e3
    print(json.dumps({
        "bench": "safety_filter", "calls": len(ms), "speed": args.speed,
        "workspace_rule_acted": changed,
        "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3), "cpu_ms_per_call": round(float(np.mean(cpu) * 1e3), 3),
        "load_avg_1min": round(os.getloadavg()[0], 2), "tick_budget_ms": 50,
    }))


if __name__ == "__main__":
    main()
