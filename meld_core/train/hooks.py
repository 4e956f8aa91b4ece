"""The training loop's side work, on hooks: what happens around Algorithm 1 without being part of it.

The loop (`meld_core.train.trainer.Trainer`) only collects, trains and counts. Everything else hangs
on `TrainerHooks`, called in order from the thread running `Trainer.run()`; the built-in ones are
installed first, in this order:

    MetricsHook      collection, model and AC scalars and speed -> TensorBoard and metrics.csv
    EvaluationHook   periodic meta-test on held-out tasks, train-task validation, best checkpoint
                     (meld_core.train.evaluation)
    CheckpointHook   a checkpoint after pre-training, every checkpoint_interval iterations, at the end
    ProgressHook     progress.json (phase, counters, status) for monitors
    ConsoleProgress  (with `progress_bars`, or added by `meld train`) what a person watching sees: a
                     tqdm bar per phase on a terminal, else a status line every 30 s

Hooks given to the Trainer (the ROS agent node's progress publisher, tests) run after them.
Episode positions in the names of scalars count from 1 (`eval/success_ep2` is the second episode).
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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

    def on_episode(self, trainer: Trainer, episode: RolloutEpisode) -> None:
        """An episode was collected and is already stored (on disk when the replay has a root)."""

    def on_trial(self, trainer: Trainer, trial: TrialRollout) -> None:
        """A train-phase trial was collected (its episodes are stored)."""

    def on_gradient_step(self, trainer: Trainer, kind: str, metrics: dict[str, float]) -> None:
        """One gradient step ("model" or "ac") was taken; `metrics` are its scalars."""

    def on_iteration(self, trainer: Trainer) -> None:
        """An iteration (collection and its gradient steps) completed; counters are updated."""

    def on_eval_trial(self, trainer: Trainer, kind: str, done: int, total: int) -> None:
        """`done` of `total` trials of an evaluation ("held-out") or validation ("validation") ran."""

    def on_eval(self, trainer: Trainer, result: EvalResult) -> None:
        """An evaluation on held-out tasks finished."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """A checkpoint was written."""

    def on_end(self, trainer: Trainer) -> None:
        """The loop ended (budget spent or a stop requested), before the run closes."""


def position_scalars(name: str, per_position: list[float]) -> dict[str, float]:
    """{"<name>_ep1": first episode's value, ...}: episode positions as people count them."""
    return {f"{name}_ep{k + 1}": float(v) for k, v in enumerate(per_position)}


class MetricsHook(TrainerHooks):
    """Averages gradient-step scalars over `log_interval` iterations (50 steps in pre-training),
    logs each train trial's success, and the speed of env, model and AC steps.

    TensorBoard's x-axis is env steps; model pre-training (no env steps) is logged as `pretrain/*`
    over its model steps instead."""

    PRETRAIN_LOG_STEPS = 50

    def __init__(self) -> None:
        self._sums: dict[str, dict[str, float]] = {"model": {}, "ac": {}}
        self._counts = {"model": 0, "ac": 0}
        self._mark: tuple[float, int, int, int] | None = None

    def on_start(self, trainer: Trainer) -> None:
        import dataclasses

        import yaml

        from meld_core.config import flatten

        c = trainer.counters
        self._mark = (time.monotonic(), c.env_steps, c.model_steps, c.ac_steps)
        metrics, config = trainer.metrics, dataclasses.asdict(trainer.config)
        if metrics is not None:  # the run's settings, as config.yaml has them
            text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
            metrics.text("config", "\n".join("    " + line for line in text.splitlines()), c.env_steps)
            E = trainer.config.train.episodes_per_trial
            metrics.hparams(flatten(config), [f"{split}/success_ep{k + 1}" for split in ("eval", "validation")
                                              for k in range(E)])

    def on_trial(self, trainer: Trainer, trial: TrialRollout) -> None:
        eps = trial.episodes
        trainer.log("collect", {**position_scalars("success", [e.success for e in eps]),
                                **position_scalars("reached", [e.reached for e in eps]),
                                **position_scalars("dense_return", [e.dense_return for e in eps])})

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
        c = trainer.counters
        for kind in ("model", "ac"):
            if self._counts[kind]:
                means = {k: v / self._counts[kind] for k, v in self._sums[kind].items()}
                if kind == "model" and c.iteration == 0 and c.ac_steps == 0:  # pre-training
                    trainer.log("pretrain", means, step=c.pretrain_steps)
                else:
                    trainer.log(kind, means)
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


logger = logging.getLogger("meld_core.train.progress")


class ConsoleProgress(TrainerHooks):
    """What a person watching a run sees.

    On a terminal (`bars=None` and stderr a TTY): one tqdm bar per phase (warm-up episodes,
    pre-training model steps, iterations) whose postfix shows the newest ELBO, critic loss and
    success, and the evaluation's trials while one runs. Route `logging` through tqdm
    (`tqdm.contrib.logging.logging_redirect_tqdm`) so log lines never break the bar.

    Elsewhere (nohup, CI, a cluster job): a status line through `logging` at every phase change and
    at the first event `status_interval_s` after the previous line: phase, progress, counters, env
    steps/s and the phase's ETA.
    """

    def __init__(self, status_interval_s: float = 30.0, *, bars: bool | None = None,
                 stream: TextIO | None = None) -> None:
        if status_interval_s <= 0:
            raise ValueError(f"status_interval_s must be > 0, got {status_interval_s}")
        self.status_interval_s = status_interval_s
        self._bars_wanted = bars
        self._stream = stream  # None: sys.stderr when the run starts
        self._bar: Any = None
        self._phase = ""
        self._use_bars = False
        self._last_line = 0.0
        self._rate_mark: tuple[float, int, int] = (0.0, 0, 0)  # time, env steps, model steps
        self._phase_mark: tuple[float, int] = (0.0, 0)  # when the phase started (this session), done then
        self._evaluating = ""
        self._elbo: float | None = None
        self._critic: float | None = None
        self._trial: list[bool] = []
        self._eval: list[float] = []

    # -- events --------------------------------------------------------------------------------------
    def on_start(self, trainer: Trainer) -> None:
        stream = self._stream or sys.stderr
        isatty = getattr(stream, "isatty", None)
        self._use_bars = self._bars_wanted if self._bars_wanted is not None else bool(isatty and isatty())
        c, now = trainer.counters, time.monotonic()
        self._rate_mark = (now, c.env_steps, c.model_steps)
        if trainer.last_eval is not None:
            self._eval = list(trainer.last_eval.success_per_position)
        self.on_phase(trainer, c.phase)  # a resumed run may start in any phase

    def on_phase(self, trainer: Trainer, phase: str) -> None:
        if phase == self._phase:
            return  # the loop announces a phase again when it (re)enters it
        self._phase = phase
        self._close_bar()
        self._phase_mark = (time.monotonic(), trainer.phase_progress()[0])
        if phase == "done":
            return
        if self._use_bars:
            from tqdm import tqdm

            done, total, unit = trainer.phase_progress()
            self._bar = tqdm(total=total, initial=done, desc=PHASE_NAMES[phase], unit=BAR_UNITS[unit],
                             leave=False, dynamic_ncols=True, file=self._stream or sys.stderr)
            self._refresh(trainer)
        else:
            self._status(trainer)

    def on_episode(self, trainer: Trainer, episode: RolloutEpisode) -> None:
        self._refresh(trainer)

    def on_trial(self, trainer: Trainer, trial: TrialRollout) -> None:
        self._trial = [e.success for e in trial.episodes]

    def on_gradient_step(self, trainer: Trainer, kind: str, metrics: dict[str, float]) -> None:
        key = "elbo" if kind == "model" else "critic_loss"
        if key in metrics:
            value = float(metrics[key])
            if kind == "model":
                self._elbo = value
            else:
                self._critic = value
        self._refresh(trainer)

    def on_iteration(self, trainer: Trainer) -> None:
        self._refresh(trainer)

    def on_eval_trial(self, trainer: Trainer, kind: str, done: int, total: int) -> None:
        self._evaluating = f"{kind} trial {done}/{total}" if done < total else ""
        self._refresh(trainer)

    def on_eval(self, trainer: Trainer, result: EvalResult) -> None:
        self._eval = list(result.success_per_position)
        self._refresh(trainer)

    def on_end(self, trainer: Trainer) -> None:
        self._close_bar()
        if not self._use_bars:
            self._status(trainer)

    # -- display -------------------------------------------------------------------------------------
    def _refresh(self, trainer: Trainer) -> None:
        if self._bar is not None:
            done, total, _ = trainer.phase_progress()
            self._bar.total = total
            self._bar.set_postfix_str(" ".join(filter(None, (self._evaluating, self._latest(compact=True)))),
                                      refresh=False)
            self._bar.update(done - self._bar.n)
        elif not self._use_bars and time.monotonic() - self._last_line >= self.status_interval_s:
            self._status(trainer)

    def _latest(self, compact: bool = False) -> str:
        """The newest ELBO, critic loss, success of the last train trial and of the last evaluation per
        episode (`eval=0.50/0.90`: episode 1, episode 2)."""
        parts = []
        if self._elbo is not None:
            parts.append(("elbo", f"{self._elbo:.4g}"))
        if self._critic is not None:
            parts.append(("critic", f"{self._critic:.3g}"))
        if self._trial:
            parts.append(("trial", "/".join(str(int(s)) for s in self._trial)))
        if self._eval:
            parts.append(("eval" if compact else "eval success", "/".join(f"{s:.2f}" for s in self._eval)))
        return " ".join(f"{k}={v}" for k, v in parts) if compact else ", ".join(f"{k} {v}" for k, v in parts)

    def status_line(self, trainer: Trainer) -> str:
        """One line: phase and its progress, counters, speed since the last line, the phase's ETA,
        newest losses and success."""
        c, now = trainer.counters, time.monotonic()
        done, total, unit = trainer.phase_progress()
        t0, env0, model0 = self._rate_mark
        dt = max(now - t0, 1e-9)
        if c.phase == "pretrain":
            speed = f"{(c.model_steps - model0) / dt:.1f} model steps/s"
        else:
            speed = f"{(c.env_steps - env0) / dt:.1f} env steps/s"
        start, done0 = self._phase_mark
        eta = ""
        if c.phase != "done" and done > done0 and total > done:
            left = (total - done) * (now - start) / (done - done0)
            eta = f" | {'ETA' if c.phase == 'train' else 'phase ETA'} {timedelta(seconds=round(left))}"
        line = (f"{PHASE_NAMES.get(c.phase, c.phase)} {done}/{total} {unit}"
                f"{f' ({100 * done // total}%)' if total else ''}"
                f"{f', {self._evaluating}' if self._evaluating else ''} | {c.env_steps} env steps, "
                f"{c.model_steps} model + {c.ac_steps} AC steps | {speed}{eta}")
        latest = self._latest()
        return f"{line} | {latest}" if latest else line

    def _status(self, trainer: Trainer) -> None:
        logger.info("status: %s", self.status_line(trainer))
        c, self._last_line = trainer.counters, time.monotonic()
        self._rate_mark = (self._last_line, c.env_steps, c.model_steps)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


BAR_UNITS = {"episodes": "ep", "model steps": "step", "iterations": "it"}
PHASE_NAMES = {"warmup": "warm-up (random policy)", "pretrain": "model pre-training",
               "train": "meta-training", "done": "done"}
