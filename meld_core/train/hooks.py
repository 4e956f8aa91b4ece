"""The training loop's side work, on hooks: what happens around Algorithm 1 without being part of it.

The loop (`meld_core.train.trainer.Trainer`) only collects, trains and counts. Everything else hangs
on `TrainerHooks`, called in order from the thread running `Trainer.run()`; the built-in ones are
installed first, in this order:

    MetricsHook      collection, model and AC scalars and speed -> TensorBoard and metrics.csv
    EvaluationHook   periodic meta-test on held-out tasks, train-task validation, best checkpoint
                     (meld_core.train.evaluation)
    CheckpointHook   a checkpoint after pre-training, every checkpoint_interval iterations, at the end
    ProgressHook     progress.json (phase, counters, status) for monitors

Hooks given to the Trainer (the ROS agent node's progress publisher, tests) run after them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meld_core.train.evaluation import EvalResult
    from meld_core.train.rollout import RolloutEpisode, TrialRollout
    from meld_core.train.trainer import Trainer


class TrainerHooks:
    """Override what you need; every method is called from the thread running `Trainer.run()`."""

    def on_start(self, trainer: Trainer) -> None:
        """The run is set up: env, agent and replay built, counters restored."""

    def on_phase(self, trainer: Trainer, phase: str) -> None:
        """A phase ("warmup", "pretrain", "train", "done") starts."""

    def on_env_step(self, trainer: Trainer) -> None:
        """The environment took a step while collecting (warm-up or training; not in evaluations)."""

    def on_episode(self, trainer: Trainer, episode: RolloutEpisode) -> None:
        """An episode was collected and is already stored (on disk when the replay has a root)."""

    def on_trial(self, trainer: Trainer, trial: TrialRollout) -> None:
        """A train-phase trial was collected (its episodes are stored)."""

    def on_gradient_step(self, trainer: Trainer, kind: str, metrics: dict[str, float]) -> None:
        """One gradient step ("model" or "ac") was taken; `metrics` are its scalars."""

    def on_iteration(self, trainer: Trainer) -> None:
        """An iteration (collection and its gradient steps) completed; counters are updated."""

    def on_eval(self, trainer: Trainer, result: EvalResult) -> None:
        """An evaluation on held-out tasks finished."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """A checkpoint was written."""

    def on_end(self, trainer: Trainer) -> None:
        """The loop ended (budget spent or a stop requested), before the run closes."""


class MetricsHook(TrainerHooks):
    """Averages gradient-step scalars over `log_interval` iterations (50 steps in pre-training),
    logs each train trial's success, and the speed of env, model and AC steps."""

    PRETRAIN_LOG_STEPS = 50

    def __init__(self) -> None:
        self._sums: dict[str, dict[str, float]] = {"model": {}, "ac": {}}
        self._counts = {"model": 0, "ac": 0}
        self._mark: tuple[float, int, int, int] | None = None

    def on_start(self, trainer: Trainer) -> None:
        c = trainer.counters
        self._mark = (time.monotonic(), c.env_steps, c.model_steps, c.ac_steps)

    def on_trial(self, trainer: Trainer, trial: TrialRollout) -> None:
        values: dict[str, float] = {}
        for e in trial.episodes:
            k = e.position_in_trial
            values.update({f"success_{k}": float(e.success), f"reached_{k}": float(e.reached),
                           f"dense_return_{k}": e.dense_return})
        trainer.log("collect", values)

    def on_gradient_step(self, trainer: Trainer, kind: str, metrics: dict[str, float]) -> None:
        sums = self._sums[kind]
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        self._counts[kind] += 1
        if trainer.counters.phase == "pretrain" and self._counts["model"] >= self.PRETRAIN_LOG_STEPS:
            self._flush(trainer)

    def on_phase(self, trainer: Trainer, phase: str) -> None:
        if phase == "train":
            self._flush(trainer)  # the last pre-training steps

    def on_iteration(self, trainer: Trainer) -> None:
        if trainer.counters.iteration % trainer.config.train.log_interval:
            return
        self._flush(trainer)
        c, now = trainer.counters, time.monotonic()
        if self._mark is not None:
            t0, env0, model0, ac0 = self._mark
            dt = max(now - t0, 1e-9)
            trainer.log("speed", {
                "env_steps_per_s": (c.env_steps - env0) / dt,
                "model_steps_per_s": (c.model_steps - model0) / dt,
                "ac_steps_per_s": (c.ac_steps - ac0) / dt,
                "global_steps_per_s": (c.global_step - env0 - model0 - ac0) / dt,
            })
        self._mark = (now, c.env_steps, c.model_steps, c.ac_steps)

    def _flush(self, trainer: Trainer) -> None:
        for kind in ("model", "ac"):
            if self._counts[kind]:
                trainer.log(kind, {k: v / self._counts[kind] for k, v in self._sums[kind].items()})
        self._sums = {"model": {}, "ac": {}}
        self._counts = {"model": 0, "ac": 0}


class CheckpointHook(TrainerHooks):
    """Checkpoints after pre-training, every `checkpoint_interval` iterations and at the end."""

    def on_phase(self, trainer: Trainer, phase: str) -> None:
        if phase == "train":
            trainer.checkpoint()

    def on_iteration(self, trainer: Trainer) -> None:
        if trainer.counters.iteration % trainer.config.train.checkpoint_interval == 0:
            trainer.checkpoint()

    def on_end(self, trainer: Trainer) -> None:
        if trainer.counters.phase != "warmup":  # a warm-up is resumed from the episodes on disk
            trainer.checkpoint()


class ProgressHook(TrainerHooks):
    """Rewrites progress.json (counters, phase, status) whenever they change."""

    def on_start(self, trainer: Trainer) -> None:
        trainer.write_progress()

    def on_phase(self, trainer: Trainer, phase: str) -> None:
        trainer.write_progress()

    def on_episode(self, trainer: Trainer, episode: RolloutEpisode) -> None:
        trainer.write_progress()

    def on_gradient_step(self, trainer: Trainer, kind: str, metrics: dict[str, float]) -> None:
        c = trainer.counters
        if c.phase == "pretrain" and c.pretrain_steps % MetricsHook.PRETRAIN_LOG_STEPS == 0:
            trainer.write_progress()

    def on_iteration(self, trainer: Trainer) -> None:
        trainer.write_progress()

    def on_eval(self, trainer: Trainer, result: EvalResult) -> None:
        trainer.write_progress()
