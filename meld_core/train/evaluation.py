"""Meta-testing (Algorithm 2 of the paper): held-out tasks, a fresh belief per trial, success per
episode position; plus the artefacts users look at (success table, videos, reward-prediction plots).

    meld eval --run-dir runs/point_smoke --episodes-per-trial 2 --rounds 3

Success of an episode = the task is solved at its last frame. "Success at position 1" (the second
episode of a two-episode trial, after the agent has seen the first one's rewards) is the number
that shows meta-learning; position 0 shows what the agent does before it has any evidence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.envs.base import Task, TaskEnv
from meld_core.train.rollout import TrialData, run_trial

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Outcome of meta-testing: one TrialData per trial, and the tables derived from them."""

    episodes_per_trial: int
    reward_input: str  # the reward the posterior saw
    trials: list[TrialData] = field(default_factory=list)

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
        """Flat metrics for TensorBoard/CSV: success_0, success_1, dense_return_0, ..."""
        out: dict[str, float] = {"num_trials": float(len(self.trials))}
        for k, v in enumerate(self.success_per_position):
            out[f"success_{k}"] = v
        for k, v in enumerate(self.reached_per_position):
            out[f"reached_{k}"] = v
        for k, v in enumerate(self.dense_return_per_position):
            out[f"dense_return_{k}"] = v
        for k, v in enumerate(self.sparse_return_per_position):
            out[f"sparse_return_{k}"] = v
        return out

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
        head = "| task | trials | " + " | ".join(f"success ep {k}" for k in range(E)) + " |"
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
) -> EvalResult:
    """Meta-test: `rounds` trials on every task in `tasks`, each from a fresh belief.

    The posterior sees only `reward_input` ("sparse" in the sparse recipe). The first
    `record_trials` trials keep rendered frames and the reward decoder's predictions.
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


def write_eval_artefacts(result: EvalResult, out_dir: Path, *, fps: float, episode_length: int,
                         extra: dict[str, Any] | None = None,
                         overview: np.ndarray | None = None) -> dict[str, Any]:
    """summary.json, success.md, an MP4 and a reward-prediction plot per recorded trial, and
    `overview.png` (an RGB image from `trial_overview`) when given."""
    from meld_core.train.media import annotate, plot_reward_prediction, write_mp4
    from meld_core.train.rundir import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    if extra:
        summary.update(extra)
    videos, plots = [], []
    for i, trial in enumerate(result.trials):
        if not trial.episodes or trial.episodes[0].video is None:
            continue
        frames = []
        for ep in trial.episodes:
            for t, frame in enumerate(ep.video):
                frames.append(annotate(frame, f"ep {ep.position_in_trial} t {t} "
                                              f"{'success' if ep.successes[t] else ''}"))
        name = f"trial_{i:02d}_task_{trial.task.index:02d}"
        try:
            video = write_mp4(out_dir / "videos" / f"{name}.mp4", frames, fps)
            videos.append(str(video.relative_to(out_dir)))
        except Exception as exc:  # a missing codec must not lose the evaluation itself
            logger.warning("could not write the video of %s: %s", name, exc)
        if trial.episodes[0].pred_mean is not None:
            eps = trial.episodes
            cat = lambda attr, eps=eps: np.concatenate([getattr(ep, attr) for ep in eps])  # noqa: E731
            title = (f"{trial.task.describe()}\nposterior input: {result.reward_input} reward; "
                     f"success per episode: {[int(ep.success) for ep in trial.episodes]}")
            plots.append(str(plot_reward_prediction(
                out_dir / "plots" / f"{name}_reward.png", cat("pred_mean"), cat("pred_std"),
                cat("dense_rewards"), cat("sparse_rewards"), episode_length, title).relative_to(out_dir)))
    summary["videos"] = videos
    summary["plots"] = plots
    if overview is not None:
        import cv2

        tmp = out_dir / "overview.tmp.png"
        if cv2.imwrite(str(tmp), np.ascontiguousarray(overview[..., ::-1])):
            tmp.replace(out_dir / "overview.png")
            summary["overview"] = "overview.png"
        else:
            logger.warning("could not write %s", out_dir / "overview.png")
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out_dir / "success.md", result.table() + "\n")
    return summary
