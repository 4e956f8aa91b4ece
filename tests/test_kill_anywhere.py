"""Kill anywhere: a smoke run SIGKILLed at named points, resumed after each kill, ends as if never killed.

Each `meld train` process is started with MELD_CRASH_AT (meld_core.faults) and kills itself with
SIGKILL at that point, so the kills land at the same places on a fast or a busy machine. After
every kill: no stored episode is lost and ids have no gaps or duplicates; at the end the run has the
model and actor-critic step counts of an uninterrupted run, and no temporary files are left.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from meld_core.config.presets import preset_config
from meld_core.files import is_temp_file
from meld_core.train.trainer import run_training

ROOT = Path(__file__).resolve().parents[1]
ITERATIONS = 6

# In order; every point must be reached by the process it is given to (the test checks the SIGKILL).
KILLS = [
    "episode_stored:warmup@4",  # warm-up: 4 of 6 episodes stored
    "gradient_step:model@5",  # model pre-training (no checkpoint yet)
    "checkpoint_written@1",  # first checkpoint renamed into place, `latest` not yet written
    "gradient_step:ac@6",  # in the second iteration's actor-critic steps
    "before_rename:ckpt_*@1",  # a checkpoint complete in its temporary file, not yet renamed
    "before_rename:summary.json@1",  # writing the periodic evaluation's artefacts
    "episode_stored:train@1",  # mid-trial: the trial's first episode stored, the second running
    "latest_written@1",  # `latest` moved to a new checkpoint, the older ones not yet rotated
]


def train(run, crash_at=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MELD_CRASH_AT", None)
    if crash_at:
        env["MELD_CRASH_AT"] = crash_at
    args = ["train", "--run-dir", str(run)]
    args += ["--resume"] if (run / "config.yaml").exists() else ["--env", "point_nav", "--preset", "smoke",
                                                                  "--iterations", str(ITERATIONS)]
    return subprocess.run([sys.executable, "-m", "meld_core.cli", *args], env=env, cwd=ROOT, timeout=300,
                          capture_output=True, text=True)


def episode_ids(run):
    return sorted(int(p.stem.split("_")[1]) for p in (run / "episodes").glob("task_*/ep_*.npz"))


@pytest.mark.slow
def test_kill_anywhere_then_resume_matches_an_uninterrupted_run(tmp_path):
    run = tmp_path / "run"
    stored: list[int] = []
    for point in KILLS:
        result = train(run, crash_at=point)
        assert result.returncode == -signal.SIGKILL, f"{point} was not reached:\n{result.stderr[-3000:]}"
        ids = episode_ids(run)
        assert ids[: len(stored)] == stored, f"episodes lost at {point}"
        assert ids == list(range(len(ids))), f"episode ids with gaps or duplicates after {point}"
        stored = ids
        assert json.loads((run / "progress.json").read_text())["status"] in ("running", "evaluating")
    result = train(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "was killed or crashed" in result.stderr

    cfg = preset_config("point_nav", "smoke")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_iterations=ITERATIONS))
    whole = run_training(cfg, tmp_path / "whole", progress_bars=False).counters
    final = json.loads((run / "progress.json").read_text())
    assert final["status"] == "finished" and final["phase"] == "done" and final["iteration"] == ITERATIONS
    assert (final["model_steps"], final["ac_steps"]) == (whole.model_steps, whole.ac_steps)
    ids = episode_ids(run)
    assert ids[: len(stored)] == stored and ids == list(range(len(ids)))
    # Only a trial cut short stays as extra data (its running episode is lost): one kill here.
    E = cfg.train.episodes_per_trial
    assert whole.episodes <= final["episodes"] == len(ids) <= whole.episodes + (E - 1)
    assert [p for p in run.rglob(".*") if is_temp_file(p)] == []
    assert len(list((run / "checkpoints").glob("ckpt_*.pt"))) == cfg.train.keep_checkpoints
