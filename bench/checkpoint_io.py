"""Checkpoint cost: writing (torch.save, atomic write, read back to check the zip's CRCs) and loading
(CRC check, then `torch.load(weights_only=True)`) one agent checkpoint, as the trainer does.

    python bench/checkpoint_io.py                   # the reference network sizes
    python bench/checkpoint_io.py --size small --repeats 5

Prints one JSON line: file size, and median seconds of save, of the CRC check alone, and of load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learner_throughput import SIZES  # noqa: E402

from meld_core.algo.agent import MeldAgent  # noqa: E402
from meld_core.train.rundir import RunDir, verify_checkpoint  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="reference")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    spec = SIZES[args.size]
    agent = MeldAgent(spec["model"], spec["sac"], spec["action_dim"], "cpu", seed=0)
    state = {"format": 1, "agent": agent.state_dict(), "counters": {"env_steps": 0}}
    saves, checks, loads = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        rd = RunDir(tmp)
        rd.make_dirs()
        for i in range(args.repeats):
            t0 = time.perf_counter()
            path = rd.save_checkpoint(state, i, keep=2)
            saves.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            verify_checkpoint(path)
            checks.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rd.load_checkpoint(path)
            loads.append(time.perf_counter() - t0)
        size = path.stat().st_size
    print(json.dumps({
        "bench": "checkpoint_io", "size": args.size, "file_mb": round(size / 2**20, 2),
        "save_s": round(statistics.median(saves), 4), "crc_check_s": round(statistics.median(checks), 4),
        "load_s": round(statistics.median(loads), 4), "repeats": args.repeats,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
