"""Control-loop latency: p50/p99 wall time of one `MeldAgent.act()` (filter step + policy), batch 1.

    python bench/control_latency.py                  # reference model, 128x64 images, CPU
    python bench/control_latency.py --size small --calls 500

The 3.3 Hz control loop leaves 303 ms per tick for everything (cameras, safety, act). `act()` runs
fp32 (bf16 autocast costs more than it saves at batch 1). `cpu_ms_per_call` (process CPU time)
and `load_avg_1min` tell a busy machine from a slow one: on a shared machine the wall time can be
several times the CPU time. Trials of 41 frames with a belief reset
at each trial start, sampled actions, random uint8 images. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learner_throughput import SIZES  # noqa: E402

from meld_core.algo.agent import MeldAgent  # noqa: E402
from meld_core.config import DeviceConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--size", choices=sorted(SIZES), default="reference")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-channels-last", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = SIZES[args.size]
    agent = MeldAgent(spec["model"], spec["sac"], spec["action_dim"],
                      DeviceConfig(device=args.device, channels_last=not args.no_channels_last), seed=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, *spec["model"].image_shape), dtype=np.uint8)
    frames = spec["frames"]
    times, cpu_times = [], []
    for i in range(args.calls + 20):
        t = i % frames
        if t == 0:
            agent.reset_belief()
        t0, c0 = time.perf_counter(), time.process_time()
        agent.act(images[i % 16], float(rng.normal()), episode_start=t == 0)
        if i >= 20:  # warm-up calls are not counted
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    ms = np.array(times) * 1e3
    print(json.dumps({
        "bench": "control_latency", "device": str(agent.device), "size": args.size,
        "image_shape": list(spec["model"].image_shape), "threads": torch.get_num_threads(), "calls": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "cpu_ms_per_call": round(float(np.mean(cpu_times) * 1e3), 3),  # process CPU time (all threads)
        "load_avg_1min": round(os.getloadavg()[0], 2), "budget_ms": 303,
        "parameters": agent.num_parameters()["total"],
    }))


if __name__ == "__main__":
    main()
