"""Meta-testing (Algorithm 2 of the paper): held-out tasks, a fresh belief per trial, success per
episode position; plus the artefacts users look at (success table, videos, reward-prediction plots),
the periodic evaluation of a training run (`EvaluationHook`) and `meld eval` (`evaluate_run`).

    meld eval --run-dir runs/point_smoke --episodes-per-trial 2 --rounds 3

Success of an episode = the task is solved at its last frame. Success in episode 2 (of a two-episode
trial, after the agent has seen the first one's rewards) is the number that shows meta-learning;
episode 1 shows what the agent does before it has any evidence. Wherever a person reads them
(tables, video captions, scalar names) episodes count from 1; lists in JSON files
(`success_per_position`) are indexed from 0, so element 0 is episode 1.

Every evaluation writes its own folder under the run's eval/ (or `meld eval --out DIR`):
step_<env steps>/ for the periodic evaluations of training, <checkpoint>_<env steps>/ for
`meld eval`; a folder is written complete under a temporary name and then renamed into place, so
it never mixes files of two evaluations. eval/latest.json names the newest folder.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.envs.base import Task, TaskEnv
from meld_core.files import atomic_write_text, fsync_dir
from meld_core.train.hooks import TrainerHooks, position_scalars
from meld_core.train.rollout import TrialRollout, run_trial

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Outcome of meta-testing: one TrialRollout per trial, and the tables derived from them."""

    episodes_per_trial: int
    reward_input: str  # the reward the posterior saw
    trials: list[TrialRollout] = field(default_factory=list)

    def _per_position(self, fn: Callable[[Any], float]) -> list[float]:
        out = []
        for k in range(self.episodes_per_trial):
            values = [fn(tr.episodes[k]) for tr in self.trials if len(tr.episodes) > k]
            out.append(float(np.mean(values)) if values else float("nan"))
        return out

    @property
    def success_per_position(self) -> list[float]:
        return self._per_position(lambda e: float(e.success))

    @property
    def reached_per_position(self) -> list[float]:
        """Fraction of episodes that were successful at any frame (not only the last), per position."""
        return self._per_position(lambda e: float(e.reached))

    @property
    def dense_return_per_position(self) -> list[float]:
        return self._per_position(lambda e: e.dense_return)

    @property
    def sparse_return_per_position(self) -> list[float]:
        return self._per_position(lambda e: e.sparse_return)

    def per_task(self) -> list[dict[str, Any]]:
        rows: dict[int, dict[str, Any]] = {}
        for tr in self.trials:
            row = rows.setdefault(tr.task.index, {"task": tr.task.describe(), "trials": 0,
                                                  "successes": [0] * self.episodes_per_trial})
            row["trials"] += 1
            for k, ep in enumerate(tr.episodes):
                row["successes"][k] += int(ep.success)
        out = []
        for index in sorted(rows):
            row = rows[index]
            out.append({"task_index": index, "task": row["task"], "trials": row["trials"],
                        "success_per_position": [s / row["trials"] for s in row["successes"]]})
        return out

    def scalars(self) -> dict[str, float]:
        """Flat metrics for TensorBoard/CSV: success_ep1, success_ep2, dense_return_ep1, ..."""
        return {"num_trials": float(len(self.trials)),
                **position_scalars("success", self.success_per_position),
                **position_scalars("reached", self.reached_per_position),
                **position_scalars("dense_return", self.dense_return_per_position),
                **position_scalars("sparse_return", self.sparse_return_per_position)}

    def summary(self) -> dict[str, Any]:
        return {
            "episodes_per_trial": self.episodes_per_trial,
            "num_trials": len(self.trials),
            "reward_input": self.reward_input,
            "success_per_position": self.success_per_position,
            "reached_per_position": self.reached_per_position,
            "dense_return_per_position": self.dense_return_per_position,
            "sparse_return_per_position": self.sparse_return_per_position,
            "per_task": self.per_task(),
        }

    def table(self) -> str:
        """The success table in Markdown (also what `meld eval` prints)."""
        E = self.episodes_per_trial
        head = "| task | trials | " + " | ".join(f"success ep {k + 1}" for k in range(E)) + " |"
        sep = "|---|---:|" + "---:|" * E
        lines = [head, sep]
        for row in self.per_task():
            cells = " | ".join(f"{v:.2f}" for v in row["success_per_position"])
            lines.append(f"| {row['task']} | {row['trials']} | {cells} |")
        total = " | ".join(f"**{v:.2f}**" for v in self.success_per_position)
        lines.append(f"| **all held-out tasks** | {len(self.trials)} | {total} |")
        return "\n".join(lines)


def evaluate(
    agent: Any,
    env: TaskEnv,
    tasks: Sequence[Task],
    episodes_per_trial: int,
    rounds: int,
    reward_input: str,
    *,
    deterministic: bool = True,
    record_trials: int = 0,
    should_stop: Callable[[], bool] | None = None,
    progress: bool = False,
    on_trial: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Meta-test: `rounds` trials on every task in `tasks`, each from a fresh belief.

    The posterior sees only `reward_input` ("sparse" in the sparse recipe). The first
    `record_trials` trials keep rendered frames and the reward decoder's predictions. `progress`
    shows a tqdm bar; `on_trial(done, total)` is called after every trial.
    """
    if episodes_per_trial < 1 or rounds < 1 or not tasks:
        raise ValueError("evaluate needs episodes_per_trial >= 1, rounds >= 1 and at least one task")
    result = EvalResult(episodes_per_trial=episodes_per_trial, reward_input=reward_input)
    schedule = [task for _ in range(rounds) for task in tasks]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(schedule), desc="eval trials", unit="trial", leave=False, disable=None)
    try:
        for i, task in enumerate(schedule):
            if should_stop is not None and should_stop():
                break
            record = i < record_trials
            trial = run_trial(env, task, episodes_per_trial, agent=agent, reward_input=reward_input,
                              deterministic=deterministic, record_video=record, record_prediction=record)
            result.trials.append(trial)
            if bar is not None:
                bar.update(1)
            if on_trial is not None:
                on_trial(i + 1, len(schedule))
    finally:
        if bar is not None:
            bar.close()
    return result


def trial_overview(env: TaskEnv, result: EvalResult) -> np.ndarray | None:
    """The env's one-picture summary of the evaluated trials (`env.trial_overview`), if it has one."""
    draw = getattr(env, "trial_overview", None)
    if draw is None or not result.trials:
        return None
    try:
        return draw(result.trials)
    except Exception as exc:  # a drawing bug must not lose the evaluation itself
        logger.warning("could not draw the trial overview: %s", exc)
        return None


def trial_frames(trial: TrialRollout) -> list[np.ndarray]:
    """The recorded frames of a trial, each captioned with its episode (from 1), frame and success."""
    from meld_core.train.media import annotate

    return [annotate(frame, f"ep {ep.position_in_trial + 1} t {t} {'success' if ep.successes[t] else ''}")
            for ep in trial.episodes for t, frame in enumerate(ep.video)]


def write_eval_artefacts(result: EvalResult, out_dir: Path, *, fps: float, episode_length: int,
                         extra: dict[str, Any] | None = None,
                         overview: np.ndarray | None = None) -> dict[str, Any]:
    """The folder `out_dir` with summary.json, success.md, an MP4 and a reward-prediction plot per
    recorded trial, and `overview.png` (an RGB image from `trial_overview`) when given.

    The folder is written under a temporary name and then renamed over `out_dir`, so it holds the
    files of this evaluation only (none left over from an earlier one of the same name)."""
    from meld_core.train.media import plot_reward_prediction, write_mp4

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        summary = result.summary()
        if extra:
            summary.update(extra)
        videos, plots = [], []
        for i, trial in enumerate(result.trials):
            if not trial.episodes or trial.episodes[0].video is None:
                continue
            name = f"trial_{i + 1:02d}_task_{trial.task.index:02d}"
            try:
                write_mp4(tmp / "videos" / f"{name}.mp4", trial_frames(trial), fps)
                videos.append(f"videos/{name}.mp4")
            except Exception as exc:  # a missing codec must not lose the evaluation itself
                logger.warning("could not write the video of %s: %s", name, exc)
            if trial.episodes[0].pred_mean is not None:
                eps = trial.episodes
                cat = lambda attr, eps=eps: np.concatenate([getattr(ep, attr) for ep in eps])  # noqa: E731
                title = (f"{trial.task.describe()}\nposterior input: {result.reward_input} reward; "
                         f"success in episodes 1-{len(eps)}: {[int(ep.success) for ep in eps]}")
                plot_reward_prediction(
                    tmp / "plots" / f"{name}_reward.png", cat("pred_mean"), cat("pred_std"),
                    np.concatenate([ep.episode.dense_rewards for ep in eps]),
                    np.concatenate([ep.episode.sparse_rewards for ep in eps]), episode_length, title)
                plots.append(f"plots/{name}_reward.png")
        summary["videos"] = videos
        summary["plots"] = plots
        if overview is not None:
            import cv2

            if cv2.imwrite(str(tmp / "overview.png"), np.ascontiguousarray(overview[..., ::-1])):
                summary["overview"] = "overview.png"
            else:
                logger.warning("could not write %s", out_dir / "overview.png")
        atomic_write_text(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
        atomic_write_text(tmp / "success.md", result.table() + "\n")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` in place of `target` (which may exist): two renames, then the old one goes."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


LATEST = "latest.json"  # in an eval folder's parent: which evaluation folder is the newest


def write_latest(eval_root: Path, folder: Path, summary: dict[str, Any]) -> None:
    """eval/latest.json: the newest evaluation's folder, source, checkpoint, counters and success."""
    keys = ("source", "checkpoint", "counters", "num_trials", "episodes_per_trial", "success_per_position")
    record = {"folder": folder.name, **{k: summary[k] for k in keys if k in summary}, "time": time.time()}
    atomic_write_text(Path(eval_root) / LATEST, json.dumps(record, indent=2) + "\n")


def read_latest(eval_root: Path) -> dict[str, Any] | None:
    """What eval/latest.json says (None when no evaluation was written there yet)."""
    try:
        return json.loads((Path(eval_root) / LATEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def log_eval_media(trainer: Any, result: EvalResult, folder: Path, summary: dict[str, Any],
                   fps: float) -> None:
    """TensorBoard: the reward-prediction plots as images and the first recorded trial as an animated
    GIF, at the current env steps."""
    from meld_core.train.media import read_rgb

    metrics = trainer.metrics
    if metrics is None:
        return
    step = trainer.counters.env_steps
    for k, plot in enumerate(summary.get("plots", [])):
        metrics.image(f"eval/reward_prediction/trial_{k + 1}", read_rgb(folder / plot), step)
    recorded = next((tr for tr in result.trials if tr.episodes and tr.episodes[0].video is not None), None)
    if recorded is not None:
        metrics.video("eval/video/trial_1", trial_frames(recorded), fps, step)


def validation_tasks(tasks: Sequence[Task], count: int) -> list[Task]:
    """`count` tasks spread evenly over `tasks` (cycled when count > len(tasks)), the same each time,
    so that successive checkpoints are compared on the same tasks."""
    if count <= len(tasks):
        return [tasks[int(i)] for i in np.linspace(0, len(tasks) - 1, count).round()]
    return [tasks[i % len(tasks)] for i in range(count)]


class EvaluationHook(TrainerHooks):
    """The periodic evaluation of a training run.

    Every `eval_interval` iterations (and at the end): `eval_trials` trials on held-out tasks (drawn
    without replacement, cycled), artefacts in eval/step_<env steps>/ (named in eval/latest.json),
    a line in eval/history.jsonl, the scalars, reward plots and a video in TensorBoard.
    With `validation_trials > 0` it also runs that many trials on train tasks (spread evenly, the
    same each time) and keeps the checkpoint whose last episode succeeded most often there as
    checkpoints/best.pt (ties go to the newer one): a run's policy can swing between evaluations, so
    the newest checkpoint is not always the one to deploy. Held-out tasks never choose it.
    """

    def __init__(self) -> None:
        self.best_score: float | None = None  # validation score of checkpoints/best.pt

    def on_start(self, trainer: Any) -> None:
        best = trainer.run_dir.best_info() if trainer.resume else None
        if best is not None:
            self.best_score = float(best["score"])

    def on_phase(self, trainer: Any, phase: str) -> None:
        if phase == "train" and trainer.config.train.eval_at_start:
            self.evaluate(trainer)

    @staticmethod
    def due(trainer: Any) -> bool:
        """An evaluation follows the iteration just completed (every `eval_interval`, and the last)."""
        t, it = trainer.config.train, trainer.counters.iteration
        return it % t.eval_interval == 0 or it == t.num_iterations

    def on_iteration(self, trainer: Any) -> None:
        if self.due(trainer):
            self.evaluate(trainer, final=trainer.counters.iteration == trainer.config.train.num_iterations)

    def on_end(self, trainer: Any) -> None:
        # A finished run resumed without new iterations still reports its final table.
        if trainer.counters.phase == "done" and not trainer.stop_requested and trainer.last_eval is None:
            self.evaluate(trainer, final=True)

    def evaluate(self, trainer: Any, final: bool = False) -> EvalResult:
        env, t, c = trainer.env, trainer.config.train, trainer.counters
        eval_tasks = list(env.eval_tasks)
        order = trainer.rng.permutation(len(eval_tasks))
        chosen = [eval_tasks[int(order[i % len(order)])] for i in range(t.eval_trials)]
        trainer.set_status("evaluating")
        result = evaluate(trainer.agent, env, chosen, t.episodes_per_trial, 1,
                          trainer.config.model.reward_input, deterministic=t.eval_deterministic,
                          record_trials=t.video_trials,
                          on_trial=lambda done, n: trainer.emit("on_eval_trial", "held-out", done, n))
        c.evaluations += 1
        trainer.last_eval = result
        trainer.log("eval", result.scalars())
        validation = self.validate(trainer) if t.validation_trials > 0 else None
        trainer.set_status("running")
        out = trainer.run_dir.eval_dir / f"step_{c.env_steps:09d}"
        summary = write_eval_artefacts(result, out, fps=env.spec.control_hz,
                                       episode_length=env.spec.episode_length,
                                       extra={"counters": c.as_dict(), "final": final,
                                              "source": "training (end)" if final else "training"},
                                       overview=trial_overview(env, result))
        write_latest(trainer.run_dir.eval_dir, out, summary)
        log_eval_media(trainer, result, out, summary, env.spec.control_hz)
        record = {"counters": c.as_dict(), "success_per_position": result.success_per_position,
                  "reached_per_position": result.reached_per_position,
                  "dense_return_per_position": result.dense_return_per_position,
                  "num_trials": len(result.trials), "final": final}
        if validation is not None:
            record["validation_success_per_position"] = validation.success_per_position
        trainer.run_dir.append_eval_record(record)
        logger.info("eval at %d env steps (%s): success in episodes 1-%d %s (at any frame: %s)", c.env_steps,
                    out.name, t.episodes_per_trial, [round(s, 2) for s in result.success_per_position],
                    [round(s, 2) for s in result.reached_per_position])
        trainer.emit("on_eval", result)
        return result

    def validate(self, trainer: Any) -> EvalResult:
        """Trials on train tasks; keep checkpoints/best.pt when the last episode did at least as well."""
        t = trainer.config.train
        tasks = validation_tasks(trainer.env.train_tasks, t.validation_trials)
        result = evaluate(trainer.agent, trainer.env, tasks, t.episodes_per_trial, 1,
                          trainer.config.model.reward_input, deterministic=t.eval_deterministic,
                          on_trial=lambda done, n: trainer.emit("on_eval_trial", "validation", done, n))
        trainer.log("validation", result.scalars())
        score = result.success_per_position[-1]
        if self.best_score is None or score >= self.best_score:
            self.best_score = score
            trainer.run_dir.save_best_checkpoint(trainer.checkpoint_state(), {
                "score": score,
                "metric": f"episode-{t.episodes_per_trial} success on {len(result.trials)} train-task trials",
                "validation_success_per_position": result.success_per_position,
                "counters": trainer.counters.as_dict(),
                "time": time.time(),
            })
            logger.info("best checkpoint so far: validation success in episodes 1-%d %s at %d env steps",
                        t.episodes_per_trial,
                        [round(s, 2) for s in result.success_per_position], trainer.counters.env_steps)
        return result


def evaluate_run(run_dir: str | Path, *, episodes_per_trial: int | None = None, rounds: int = 3,
                 checkpoint: str | Path | None = None, device: str | None = None, video_trials: int = 2,
                 deterministic: bool | None = None,
                 env_factory: Callable[[Any], TaskEnv] | None = None,
                 out_dir: str | Path | None = None,
                 ) -> tuple[EvalResult, dict[str, Any]]:
    """Meta-test a run's checkpoint on all held-out tasks.

    Artefacts go to <out_dir>/<checkpoint>_<env steps>/ (`out_dir` default: the run's eval/; the
    checkpoint is "latest", "best" or the file's name), and <out_dir>/latest.json names that folder;
    nothing else is written. The summary's "folder" is the folder's path.

    Writing into the run locks it (`RunDir.lock`: refused while another process trains or evaluates
    it). When the folder cannot be written (a read-only or full disk, no permission), the results go
    to a new temporary folder instead, with a warning: an evaluation is never lost to a write."""
    from meld_core.files import explain_os_error
    from meld_core.train.rundir import RunDir
    from meld_core.train.setup import load_run_agent

    if episodes_per_trial is not None and episodes_per_trial < 1:
        raise ValueError(f"episodes per trial must be >= 1, got {episodes_per_trial}")
    if rounds < 1 or video_trials < 0:
        raise ValueError(f"rounds must be >= 1 and video trials >= 0, got {rounds} and {video_trials}")
    rd = RunDir(run_dir).require()
    root: Path | None = Path(out_dir) if out_dir is not None else rd.eval_dir
    with contextlib.ExitStack() as stack:
        if root.resolve().is_relative_to(rd.root.resolve()):
            try:
                stack.enter_context(rd.lock("evaluation"))
            except OSError as exc:
                logger.warning("%s; the results will go to a temporary folder", explain_os_error(exc))
                root = None
        rd, config, state, env, agent = load_run_agent(rd.root, checkpoint=checkpoint, device=device,
                                                       env_factory=env_factory)
        try:
            E = episodes_per_trial or config.train.episodes_per_trial
            det = config.train.eval_deterministic if deterministic is None else deterministic
            counters = state["counters"]
            label = checkpoint_label(checkpoint)
            name = f"{label}_{counters['env_steps']:09d}"
            logger.info("meta-testing checkpoint %s of %s (iteration %d, %d env steps): %d held-out tasks x "
                        "%d rounds, %d episodes per trial", label, rd.root, counters["iteration"],
                        counters["env_steps"], len(env.eval_tasks), rounds, E)
            result = evaluate(agent, env, list(env.eval_tasks), E, rounds, config.model.reward_input,
                              deterministic=det, record_trials=video_trials, progress=True)
            write = functools.partial(
                write_eval_artefacts, result, fps=env.spec.control_hz, episode_length=env.spec.episode_length,
                extra={"counters": counters, "rounds": rounds, "deterministic": det, "source": "meld eval",
                       "checkpoint": label},
                overview=trial_overview(env, result))
            summary = None
            if root is not None:
                try:
                    summary = write(root / name)
                    write_latest(root, root / name, summary)
                except OSError as exc:
                    logger.warning("%s; writing the results to a temporary folder instead",
                                   explain_os_error(exc))
                    summary = None
            if summary is None:
                root = Path(tempfile.mkdtemp(prefix=f"meld-eval-{rd.root.name}-"))
                summary = write(root / name)
                write_latest(root, root / name, summary)
                logger.warning("evaluation results written to %s", root / name)
        finally:
            env.close()
    summary["folder"] = str(root / name)
    return result, summary


def checkpoint_label(checkpoint: str | Path | None) -> str:
    """How an evaluation folder names the checkpoint it tested: latest, best or the file's stem."""
    if checkpoint is None or str(checkpoint) in ("latest", "best"):
        return str(checkpoint or "latest")
    return Path(checkpoint).stem
