"""Ctrl-C of `sim.launch.py` in the train phase, then `resume:=true`: is there a checkpoint, and are
training steps lost?

    source <ros>/setup.bash && source <overlay>/install/setup.bash
    MUJOCO_GL=egl python3 bench/ctrl_c_resume.py --iterations 4 > ctrl_c.json

Runs `ros2 launch meld_ros sim.launch.py` with a tiny WidowX config (T=10, E=2, one model and one
AC step per env step) in its own process group, waits until the run is in the train phase with at
least one iteration done and the next one collecting, and sends SIGINT to the whole group, as
Ctrl-C in a terminal does (every node gets it, and launch forwards its own). Then it resumes the
run to the end and compares the counters with what an uninterrupted run takes (pre-training steps
plus int(E*T*ratio) model and AC steps per iteration). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from meld_core.testing.widowx_smoke import smoke_run_config
from meld_core.train.rundir import RunDir


def launch(run_dir: Path, config: Path, env_config: str, resume: bool, log: Path) -> subprocess.Popen:
    cmd = ["ros2", "launch", "meld_ros", "sim.launch.py", f"run_dir:={run_dir}", f"run_config:={config}",
           f"env_config:={env_config}", "device:=cpu", f"resume:={'true' if resume else 'false'}"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def progress(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "progress.json").read_text())
    except (OSError, ValueError):
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--stop-after-s", type=float, default=2.0,
                        help="seconds into the second iteration's collection at which Ctrl-C comes")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="meld_ctrl_c_"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = smoke_run_config(iterations=args.iterations, episode_length=10)
    train = dataclasses.replace(cfg.train, model_train_ratio=1.0, ac_train_ratio=1.0,
                                checkpoint_interval=1000)
    cfg = dataclasses.replace(cfg, train=train)
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    run_dir = work / "run"
    env_config = json.dumps(cfg.env_config)

    proc = launch(run_dir, config, env_config, False, work / "launch1.log")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and progress(run_dir).get("iteration", 0) < 1:
        time.sleep(0.2)
    time.sleep(args.stop_after_s)
    before = progress(run_dir)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
    code = proc.wait(timeout=120)
    stop_s = time.monotonic() - sent
    stopped = progress(run_dir)
    saved = RunDir(run_dir).load_checkpoint()["counters"]

    proc = launch(run_dir, config, env_config, True, work / "launch2.log")
    resumed_code = proc.wait(timeout=1800)
    final = progress(run_dir)
    t = cfg.train
    E, T = t.episodes_per_trial, cfg.env_config["episode_length"]
    n = args.iterations
    expected = {"model_steps": final.get("pretrain_steps", 0) + n * int(E * T * t.model_train_ratio),
                "ac_steps": n * int(E * T * t.ac_train_ratio)}
    keys = ("phase", "iteration", "episodes", "env_steps", "model_steps", "ac_steps")
    print(json.dumps({
        "workdir": str(work),
        "ctrl_c": {"launch_exit_code": code, "seconds_to_exit": round(stop_s, 2),
                   "progress_before": {k: before.get(k) for k in keys},
                   "progress_after": {k: stopped.get(k) for k in (*keys, "status")},
                   "checkpoint_counters": {k: saved.get(k) for k in keys}},
        "resume": {"launch_exit_code": resumed_code, "final": {k: final.get(k) for k in (*keys, "status")},
                   "uninterrupted_run_takes": expected},
        "steps_lost": max(0, expected["model_steps"] - final.get("model_steps", 0))
        + max(0, expected["ac_steps"] - final.get("ac_steps", 0)),
        "load_average": os.getloadavg(),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
