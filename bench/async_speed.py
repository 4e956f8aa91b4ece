"""Collection and training overlapped: env steps per wall-clock hour of a run preset in alternate and in
async mode, with the same gradient steps per env step, in one invocation.

    MUJOCO_GL=egl python bench/async_speed.py --preset widowx_insertion:small --iterations 12
    MUJOCO_GL=egl python bench/async_speed.py --preset point_nav:small --iterations 20

Runs the preset as it is defined now (`meld_core.config.presets`) twice from scratch, in a fresh run
directory each: `alternate` (Algorithm 1, one process, `--threads` torch threads) and `async` (actor and
learner processes on their own cores, `DeviceConfig.pin_cpus`). Warm-up and model pre-training are the
same work in both modes and are timed apart (`setup_s`); the figure is the training phase: `--iterations`
collect/train iterations after pre-training, evaluation reduced to one trial at the end (no videos, no
validation) so that it weighs the same in both. The gradient steps per env step are the preset's in both
modes (the async learner trains every collected iteration at the preset's ratios; the JSON shows the
step counts). Prints one JSON line: both wall clocks, env steps per hour, and `speedup` = async env steps
per hour / alternate env steps per hour in the steady state (iterations 3 to the last; the async actor
collects iteration 1 while the learner pre-trains, so the whole training phase of async holds part of
the pre-training, `speedup_training_phase`; use 6 or more iterations). Only meaningful on a quiet
machine (see `load_avg_*`).

`--paced`: the environment keeps the robot's control rate in the training phase (each step returns no
sooner than one control period after the previous one, as the arm at 3.3 Hz does), so collection costs
what it costs on the robot; warm-up stays unpaced in both modes (it is the same work).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from meld_core.config.presets import preset_config
from meld_core.train.hooks import TrainerHooks
from meld_core.train.trainer import default_env_factory, run_training


class PacedEnv:
    """A TaskEnv whose step() returns no sooner than one control period after the previous step (while
    `paced` is set): collection at the robot's rate."""

    def __init__(self, env) -> None:
        self._env = env
        self.paced = False
        self._last = 0.0
        self.period = 1.0 / env.spec.control_hz

    def __getattr__(self, name: str):
        return getattr(self._env, name)

    def reset(self):
        obs = self._env.reset()
        self._last = time.monotonic()
        return obs

    def step(self, action):
        obs = self._env.step(action)
        if self.paced:
            wait = self._last + self.period - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last = time.monotonic()
        return obs


class PhaseClock(TrainerHooks):
    """Wall-clock time at which the training phase starts (after warm-up and pre-training); paces the
    environments of `envs` from then on."""

    def __init__(self, envs: list[PacedEnv] | None = None) -> None:
        self.start = time.monotonic()
        self.train_start: float | None = None
        self.train_env_steps0 = 0
        self.envs = envs if envs is not None else []
        self.iteration_ends: list[tuple[float, int]] = []  # (time, env steps) at the end of each iteration

    def on_phase(self, trainer, phase: str) -> None:
        if phase == "train" and self.train_start is None:
            self.train_start = time.monotonic()
            self.train_env_steps0 = trainer.counters.env_steps
            for env in self.envs:
                env.paced = True

    def on_iteration(self, trainer) -> None:
        self.iteration_ends.append((time.monotonic(), trainer.counters.env_steps))


def run_mode(mode: str, preset: str, iterations: int, threads: int, root: Path, paced: bool = False) -> dict:
    env, name = preset.split(":")
    cfg = preset_config(env, name)
    train = dataclasses.replace(cfg.train, mode=mode, num_iterations=iterations, eval_interval=10**6,
                                eval_trials=1, video_trials=0, validation_trials=0,
                                checkpoint_interval=max(iterations, 1))
    cfg = dataclasses.replace(cfg, train=train, device=dataclasses.replace(cfg.device, device="cpu"))
    envs: list[PacedEnv] = []

    def paced_env(config):
        envs.append(PacedEnv(default_env_factory(config)))
        return envs[-1]

    clock = PhaseClock(envs)
    run_dir = root / mode
    torch.set_num_threads(threads)
    trainer = run_training(cfg, run_dir, hooks=[clock], progress_bars=False,
                           env_factory=paced_env if paced else None)
    end = time.monotonic()
    c = trainer.counters
    progress = json.loads((run_dir / "progress.json").read_text())  # the learner's counters in async mode
    train_env_steps = c.env_steps - clock.train_env_steps0
    train_s = end - clock.train_start
    out = {"wall_s": round(end - clock.start, 1), "setup_s": round(clock.train_start - clock.start, 1),
           "train_s": round(train_s, 1), "train_env_steps": train_env_steps,
           "env_steps_per_hour": round(train_env_steps / train_s * 3600),
           "env_steps": c.env_steps, "model_steps": progress["model_steps"], "ac_steps": progress["ac_steps"],
           "iterations": progress["iteration"]}
    # Steady state: from the end of iteration 2 to the last. The async actor enters its training phase
    # as soon as the learner starts pre-training and collects iteration 1 meanwhile, so the phase's wall
    # clock holds part of the pre-training that alternate's `setup_s` holds; iterations 3.. are alike.
    if len(clock.iteration_ends) >= 3:
        (t0, s0), (t1, s1) = clock.iteration_ends[1], clock.iteration_ends[-1]
        out["steady_iterations"] = len(clock.iteration_ends) - 2
        out["steady_env_steps_per_hour"] = round((s1 - s0) / (t1 - t0) * 3600)
    if mode == "async":
        actor = json.loads((run_dir / "progress_actor.json").read_text())
        out["actor_waited_for_learner_s"] = actor["waited_for_learner_s"]
        out["learner_waited_for_actor_s"] = progress["waited_for_actor_s"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="widowx_insertion:small", metavar="ENV:PRESET")
    p.add_argument("--iterations", type=int, default=12, help="training iterations timed in each mode")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch threads of the alternate run (default: every usable core)")
    p.add_argument("--modes", default="alternate,async")
    p.add_argument("--paced", action="store_true", help="collect at the control rate (training phase)")
    p.add_argument("--keep", default=None, help="keep the run directories under this folder")
    args = p.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="async_speed_"))
    load_before = os.getloadavg()
    results = {}
    try:
        for mode in args.modes.split(","):
            if (root / mode).exists():
                shutil.rmtree(root / mode)
            results[mode] = run_mode(mode, args.preset, args.iterations, args.threads, root, args.paced)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    line = {"bench": "async_speed", "preset": args.preset, "iterations": args.iterations, "paced": args.paced,
            "alternate_threads": args.threads, "cpus": len(os.sched_getaffinity(0)), **results,
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
    if "alternate" in results and "async" in results:
        rates = [results[m]["env_steps_per_hour"] for m in ("async", "alternate")]
        line["speedup_training_phase"] = round(rates[0] / rates[1], 3)
        if all("steady_env_steps_per_hour" in results[m] for m in ("async", "alternate")):
            steady = [results[m]["steady_env_steps_per_hour"] for m in ("async", "alternate")]
            line["speedup"] = round(steady[0] / steady[1], 3)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
