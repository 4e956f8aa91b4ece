"""Record WidowX insertion trials, export them to MCAP and LeRobot, time it, and draw docs/export_preview.png.

    MUJOCO_GL=egl python bench/export_preview.py --trials 5 --preview docs/export_preview.png

Each trial has two episodes on one task: the first with random actions, the second by the scripted
expert (`meld_core.robot.oracle`, it knows the goal port), so the picture shows a miss and an
insertion. The trials are stored as the trainer stores them (a run directory under --work), then
exported with `meld export`'s functions. The last line is one JSON object: export times, sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


class RandomThenOracle:
    """An `Agent` for run_trial: uniform random actions in the trial's first episode, the expert after."""

    def __init__(self, env, seed: int) -> None:
        import numpy as np

        from meld_core.robot.oracle import InsertionOracle

        cfg = env.config
        self.env = env
        self.oracle = InsertionOracle(env.kinematics, cfg.control_hz, cfg.action_scale, cfg.velocity_quantum)
        self.rng = np.random.default_rng(seed)
        self.episode = -1

    def reset_belief(self) -> None:
        self.episode = -1

    def act(self, image, reward, *, episode_start, deterministic=False, prev_action=None):
        if episode_start:
            self.episode += 1
            self.oracle.reset()
        if self.episode == 0:
            return self.rng.uniform(-1, 1, size=5).astype("float32")
        return self.oracle.act(self.env.joint_state()[0], self.env.goal_port_pose()).astype("float32")

    def predicted_reward(self) -> tuple[float, float]:
        return 0.0, 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="trials (two episodes each) to record")
    parser.add_argument("--work", default=None, help="folder for the run and exports (default: temporary)")
    parser.add_argument("--preview", default=None, help="write the preview of the first trial's MCAP here")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")

    from meld_core.algo.replay import ReplayStore
    from meld_core.config import ReplayConfig
    from meld_core.config.presets import preset_config
    from meld_core.data.lerobot_export import export_lerobot
    from meld_core.data.mcap_export import McapExportConfig, export_mcap
    from meld_core.data.preview import render_preview
    from meld_core.envs.widowx_insertion import WidowXInsertionEnv
    from meld_core.train.rollout import run_trial
    from meld_core.train.rundir import RunDir
    from meld_core.train.setup import prepare_run_dir, task_lists

    work = Path(args.work or tempfile.mkdtemp(prefix="meld_export_"))
    run = work / "wx_oracle"
    cfg = preset_config("widowx_insertion", "small")
    rd = RunDir(run)
    env = WidowXInsertionEnv(cfg.build_env_config(), seed=0)
    prepare_run_dir(rd, cfg, task_lists(env))
    store = ReplayStore(ReplayConfig(fsync=False), len(env.train_tasks), rd.episodes_dir)
    agent = RandomThenOracle(env, seed=0)
    t0 = time.perf_counter()
    for k in range(args.trials):
        trial = store.next_episode_id()

        def keep(rollout, trial=trial):
            rollout.episode.meta.update(run=run.name, trial=trial, phase="demo")
            store.add(rollout.episode)

        run_trial(env, env.train_tasks[k % len(env.train_tasks)], 2, agent=agent, deterministic=True,
                  on_episode=keep)
    record_s = time.perf_counter() - t0
    env.close()
    frames = store.total_steps + store.total_episodes

    def timed(fn, *a, **kw):  # (result, wall s, CPU s of this process)
        w, c = time.perf_counter(), time.process_time()
        out = fn(*a, **kw)
        return out, round(time.perf_counter() - w, 3), round(time.process_time() - c, 3)

    files, mcap_s, mcap_cpu = timed(export_mcap, run, work / "mcap")
    png_config = McapExportConfig(per="run", image_format="png")
    _, png_s, png_cpu = timed(export_mcap, run, work / "mcap_png", png_config)
    dataset, lerobot_s, lerobot_cpu = timed(export_lerobot, run, work / "lerobot")
    if args.preview:
        render_preview(files[0], args.preview)

    def size(path: Path) -> int:
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    result = {
        "bench": "export_preview", "trials": args.trials, "frames": frames, "record_s": round(record_s, 2),
        "mcap_raw_s": mcap_s, "mcap_raw_cpu_s": mcap_cpu, "mcap_raw_bytes": size(work / "mcap"),
        "mcap_png_run_s": png_s, "mcap_png_cpu_s": png_cpu, "mcap_png_bytes": size(work / "mcap_png"),
        "lerobot_s": lerobot_s, "lerobot_cpu_s": lerobot_cpu, "lerobot_bytes": size(dataset),
        "episode_files_bytes": size(rd.episodes_dir), "work": str(work),
        "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
