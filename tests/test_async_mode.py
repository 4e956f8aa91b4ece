"""Async mode with real processes: a smoke run, and kill -9 of the learner and of the actor, each resumed
with no episode lost or duplicated and the gradient steps of an uninterrupted run."""

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meld_core.config.presets import preset_config
from meld_core.train.async_mode import PeerLostError, run_async
from meld_core.train.rundir import RunDir

REPO = Path(__file__).resolve().parent.parent


def tiny_async(**train):
    """The point_nav smoke preset in async mode, trimmed: 3 iterations, one evaluation at the end."""
    cfg = preset_config("point_nav", "smoke")
    kw = dict(mode="async", num_iterations=3, eval_interval=100, eval_trials=1, video_trials=0,
              validation_trials=0, checkpoint_interval=1)
    kw.update(train)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **kw))


def expected(cfg):
    """Counters of an uninterrupted run (the same as alternate mode's)."""
    t, T, tasks = cfg.train, cfg.env_config["episode_length"], cfg.env_config["num_train_tasks"]
    warmup = tasks * t.init_collect_trials_per_task * t.episodes_per_trial
    pretrain = int(warmup * T * t.init_model_train_ratio)
    per_iter = t.episodes_per_trial * T
    return {"episodes": warmup + t.num_iterations * t.episodes_per_trial,
            "model_steps": pretrain + t.num_iterations * int(per_iter * t.model_train_ratio),
            "ac_steps": t.num_iterations * int(per_iter * t.ac_train_ratio),
            "iteration": t.num_iterations}


def episode_ids(run):
    return sorted(int(p.stem.split("_")[1]) for p in (run / "episodes").glob("task_*/ep_*.npz"))


def learner_counters(run):
    return RunDir(run).load_checkpoint()["counters"]


def assert_complete(run, cfg, extra_episodes=0):
    want = expected(cfg)
    c = learner_counters(run)
    assert c["phase"] == "done"
    assert {k: c[k] for k in ("model_steps", "ac_steps", "iteration")} == {
        k: want[k] for k in ("model_steps", "ac_steps", "iteration")}
    ids = episode_ids(run)
    assert ids == list(range(want["episodes"] + extra_episodes))  # none lost, none duplicated
    assert json.loads((run / "progress_actor.json").read_text())["status"] == "finished"
    assert RunDir(run).eval_history()[-1]["final"]  # the actor evaluated the final weights


def test_async_smoke_run_matches_the_gradient_steps_of_alternate_mode(tmp_path):
    cfg = tiny_async()
    cores = os.sched_getaffinity(0)
    actor = run_async(cfg, tmp_path / "run", progress_bars=False)
    assert actor.counters.phase == "done" and actor.counters.iteration == 3
    assert_complete(tmp_path / "run", cfg)
    assert os.sched_getaffinity(0) == cores  # the actor's pinning ends with the run


def test_kill_9_of_the_learner_then_resume(tmp_path, monkeypatch):
    cfg = tiny_async()
    run = tmp_path / "run"
    pretrain = expected(cfg)["model_steps"] - 3 * 4
    monkeypatch.setenv("MELD_CRASH_AT", f"gradient_step@{pretrain + 8 + 3}")  # inside iteration 1
    with pytest.raises(PeerLostError, match="killed by signal 9"):
        run_async(cfg, run, progress_bars=False)
    assert learner_counters(run)["iteration"] == 1  # its last checkpoint: after iteration 0
    monkeypatch.delenv("MELD_CRASH_AT")
    run_async(cfg, run, resume=True, progress_bars=False)
    assert_complete(run, cfg)


ACTOR = textwrap.dedent("""
    import dataclasses, sys
    from meld_core.config.presets import preset_config
    from meld_core.train.async_mode import run_async
    cfg = preset_config("point_nav", "smoke")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mode="async", num_iterations=3,
        eval_interval=100, eval_trials=1, video_trials=0, validation_trials=0, checkpoint_interval=1))
    run_async(cfg, sys.argv[1], progress_bars=False)
""")


def wait_unlocked(path, timeout_s):
    """Until no process holds the flock on `path` (the learner's lock dies with it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.2)
    raise AssertionError(f"{path} is still locked after {timeout_s} s")


def test_kill_9_of_the_actor_in_an_episode_then_resume(tmp_path):
    cfg = tiny_async()
    run = tmp_path / "run"
    T = cfg.env_config["episode_length"]
    warmup_steps = expected(cfg)["episodes"] * T - 3 * 2 * T
    env = {**os.environ, "MELD_CRASH_AT": f"env_step@{warmup_steps + 2 * T + 5}",  # iteration 1, step 5
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", ACTOR, str(run)], env=env, cwd=REPO, timeout=300)
    assert proc.returncode == -9
    before = episode_ids(run)
    assert before == list(range(len(before)))
    wait_unlocked(run / ".lock_learner", 60)  # the learner stops when its actor dies (and checkpoints)
    run_async(cfg, run, resume=True, progress_bars=False)
    assert_complete(run, cfg)  # the running episode was lost, never half-written: ids stay contiguous


def test_a_silent_peer_is_lost_after_the_timeout_and_not_before(tmp_path):
    import types

    from meld_core.train.async_mode import _AsyncRole

    class Role(_AsyncRole):
        PEER = "learner"

        def __init__(self, progress, timeout_s):
            self.config = types.SimpleNamespace(train=types.SimpleNamespace(async_timeout_s=timeout_s))
            self._started_wall = time.time() - 100  # this process started 100 s ago
            self.progress = progress

        def _peer_exited(self):
            return None

        def _peer_progress_path(self):
            return self.progress

    progress = tmp_path / "progress.json"
    assert Role(progress, 50)._peer_problem().startswith("the learner has shown no sign of life for 100 s")
    assert Role(progress, 150)._peer_problem() is None  # never wrote: counted from our start
    progress.write_text("{}")
    os.utime(progress, (time.time() - 80, time.time() - 80))
    assert "80 s" in Role(progress, 60)._peer_problem() and Role(progress, 90)._peer_problem() is None
