"""Stopping a run whose robot goes down with it (Ctrl-C of a launch), and warm-up progress.

Ctrl-C reaches every node of a launch at once: after the agent's stop request its environment
fails (stale camera frames, an arm that cannot home). That failure ends the running episode; the
run is still checkpointed, marked stopped, and a resume owes no training steps.
"""

import dataclasses
import json

import pytest

from meld_core.bridge.remote_env import StaleInputError
from meld_core.config.presets import preset_config
from meld_core.envs.point_nav import PointNavEnv
from meld_core.train.hooks import TrainerHooks
from meld_core.train.rundir import RunDir
from meld_core.train.trainer import Trainer, run_training


def tiny(**train):
    cfg = preset_config("point_nav", "smoke")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


class GraphGoesDown(PointNavEnv):
    """Asks the trainer to stop in the middle of a train-phase episode (a Ctrl-C), then fails every
    step the way the robot env does once the camera nodes are gone."""

    def __init__(self, config, *, stop_after_steps):
        super().__init__(config.build_env_config())
        self.trainer = None
        self.stop_after_steps = stop_after_steps
        self.error = StaleInputError("scene", 0.602, 0.25)
        self.train_steps = 0

    def step(self, action):
        if self.trainer.counters.phase == "train":
            self.train_steps += 1
            if self.train_steps == self.stop_after_steps:
                self.trainer.request_stop()
            elif self.train_steps > self.stop_after_steps:
                raise self.error
        return super().step(action)


def start(cfg, run, env):
    trainer = Trainer(cfg, run, progress_bars=False)
    env.trainer = trainer
    trainer._env_factory = lambda c: env
    return trainer


def test_an_env_failing_after_a_stop_request_still_checkpoints_and_resumes_without_losing_steps(tmp_path):
    # Before: the failure took the trainer's exception path: no checkpoint, progress.json "failed".
    cfg = tiny(num_iterations=4, checkpoint_interval=100, eval_interval=100)
    whole = run_training(cfg, tmp_path / "whole", progress_bars=False).counters
    run = tmp_path / "run"
    env = GraphGoesDown(cfg, stop_after_steps=8 * 2 + 3)  # iteration 2, its trial's first episode
    trainer = start(cfg, run, env)
    counters = trainer.run()
    assert trainer.stop_requested and counters.phase == "train" and counters.iteration == 1
    assert json.loads((run / "progress.json").read_text())["status"] == "stopped"
    saved = RunDir(run).load_checkpoint()["counters"]
    assert saved["iteration"] == 1 and saved["model_steps"] == counters.model_steps
    assert saved["ac_steps"] == counters.ac_steps > 0
    resumed = run_training(None, run, resume=True, progress_bars=False).counters
    assert resumed.phase == "done" and resumed.iteration == 4
    assert (resumed.model_steps, resumed.ac_steps) == (whole.model_steps, whole.ac_steps)


def test_an_env_failure_without_a_stop_request_is_a_failure(tmp_path):
    cfg = tiny(num_iterations=2)
    env = GraphGoesDown(cfg, stop_after_steps=0)  # fails from the first train step, no stop asked
    trainer = start(cfg, tmp_path / "run", env)
    with pytest.raises(StaleInputError):
        trainer.run()
    assert json.loads((tmp_path / "run" / "progress.json").read_text())["status"] == "failed"


class WarmupProgress(TrainerHooks):
    def __init__(self):
        self.seen = []

    def on_episode(self, trainer, episode):
        progress = trainer.progress()
        if progress["phase"] == "warmup":
            self.seen.append((progress["warmup_episodes"], progress["warmup_total"]))


def test_progress_counts_warm_up_episodes(tmp_path):
    cfg = tiny(num_iterations=1)
    hook = WarmupProgress()
    trainer = run_training(cfg, tmp_path / "run", hooks=[hook], progress_bars=False)
    t = cfg.train
    total = len(trainer.env.train_tasks) * t.init_collect_trials_per_task * t.episodes_per_trial
    assert hook.seen == [(k, total) for k in range(1, total + 1)]
    assert "warmup_episodes" not in trainer.progress()  # only while warming up
