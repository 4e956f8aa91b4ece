"""Meta-training (Algorithm 1 of the MELD paper): one loop for the simulation and the real robot.

    meld train --env point_nav --preset smoke --run-dir runs/point_smoke

The loop, as the reference runs it (reference notes section 3.1):

1. warm-up: `init_collect_trials_per_task` trials per train task with a uniform random policy;
2. model pre-training: int(warm-up env steps x init_model_train_ratio) model steps;
3. iterations: pick a train task -> collect one trial of E episodes with the current policy (the
   belief carried across the episode resets) -> int(env steps x model_train_ratio) model steps and
   int(env steps x ac_train_ratio) actor-critic steps -> every `eval_interval` iterations evaluate
   on held-out tasks -> every `checkpoint_interval` iterations checkpoint.

Best checkpoint: with `validation_trials > 0`, every evaluation also runs that many trials on train
tasks, and the checkpoint whose last episode succeeded most often there is kept as
`checkpoints/best.pt` (`meld eval --checkpoint best`). The policy of a run swings between
evaluations (a learned search can break and come back within a few hundred gradient steps), so the
newest checkpoint is not always the one to deploy; held-out tasks are never used to choose.

The `Trainer` is built from factories (environment, agent, replay) and a run directory, so the
ROS agent node runs this same loop with a ROS-backed `TaskEnv` whose steps wait for the control
tick: nothing here assumes a fast or in-process environment. Side work hangs on hooks
(`TrainerHooks`): every finished episode is stored by the replay (atomic file per episode) before
the hooks see it; metrics, checkpoints and evaluation artefacts are written by the trainer's
built-in hooks. `request_stop()` (from any thread) ends the run cleanly: the running episode (or
gradient step) finishes, a checkpoint is written, `run()` returns; `env.close()` is always called.

Crash safety: a SIGKILL loses at most the running episode. On `resume`, the newest checkpoint gives
the networks, optimisers, RNG states and counters; episodes written after it are kept (they were
collected) and the counters are reconciled with the replay on disk, so episode ids continue without
gaps or duplicates.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.algo.replay import Episode, ReplayStore
from meld_core.config import RunConfig, config_from_dict
from meld_core.envs.base import EnvSpec, Task, TaskEnv
from meld_core.train.evaluation import EvalResult, evaluate, trial_overview, write_eval_artefacts
from meld_core.train.metrics import MetricsLogger
from meld_core.train.rollout import EpisodeData, run_trial
from meld_core.train.rundir import CheckpointError, RunDir, RunDirError

logger = logging.getLogger(__name__)

PHASES = ("warmup", "pretrain", "train", "done")


class ConfigMismatchError(RunDirError):
    """The run directory (or offline run) belongs to a different configuration."""


@dataclass
class Counters:
    """Progress of a run; saved in every checkpoint and in progress.json."""

    env_steps: int = 0  # environment steps collected (warm-up included)
    episodes: int = 0  # episodes collected and stored
    model_steps: int = 0  # model gradient steps
    ac_steps: int = 0  # actor-critic gradient steps
    iteration: int = 0  # completed training iterations (after warm-up and pre-training)
    pretrain_steps: int = 0  # model pre-training steps done (part of model_steps)
    evaluations: int = 0  # evaluations done
    phase: str = "warmup"  # one of PHASES

    @property
    def global_step(self) -> int:
        """Env steps + model steps + AC steps, the reference's mixed "global step"."""
        return self.env_steps + self.model_steps + self.ac_steps

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["global_step"] = self.global_step
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Counters:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class TrainerHooks:
    """Override what you need; every method is called from the thread running `Trainer.run()`."""

    def on_phase(self, trainer: Trainer, phase: str) -> None:
        """A phase ("warmup", "pretrain", "train", "done") starts."""

    def on_episode(self, trainer: Trainer, episode: Episode, data: EpisodeData) -> None:
        """An episode was collected and is already stored (on disk when the replay has a root)."""

    def on_train_metrics(self, trainer: Trainer, prefix: str, metrics: dict[str, float]) -> None:
        """Averaged training scalars ("model", "ac", "collect", "speed")."""

    def on_eval(self, trainer: Trainer, result: EvalResult) -> None:
        """An evaluation on held-out tasks finished."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """A checkpoint was written."""


def default_agent_factory(config: RunConfig, spec: EnvSpec) -> Any:
    """A `MeldAgent` for `config` on the device it names."""
    from meld_core.algo.agent import MeldAgent

    return MeldAgent(config.model, config.sac, spec.action_dim, device=config.device, seed=config.train.seed)


def default_env_factory(config: RunConfig) -> TaskEnv:
    from meld_core.envs.registry import make_env

    return make_env(config.env, config.build_env_config(), seed=config.train.seed)


def load_run_config(run_dir: RunDir) -> RunConfig:
    data = run_dir.read_yaml(run_dir.config_path)
    try:
        return config_from_dict(RunConfig, data)
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{run_dir.config_path} is not a valid run config: {exc}") from None


def validation_tasks(tasks: Sequence[Task], count: int) -> list[Task]:
    """`count` tasks spread evenly over `tasks` (cycled when count > len(tasks)), the same each time,
    so that successive checkpoints are compared on the same tasks."""
    if count <= len(tasks):
        return [tasks[int(i)] for i in np.linspace(0, len(tasks) - 1, count).round()]
    return [tasks[i % len(tasks)] for i in range(count)]


def task_list(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    return [{"index": t.index, "split": t.split, "params": dict(t.params)} for t in tasks]


class Trainer:
    """Meta-training on one `TaskEnv`; see the module docstring."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: RunDir | str | Path,
        *,
        env_factory: Callable[[RunConfig], TaskEnv] = default_env_factory,
        agent_factory: Callable[[RunConfig, EnvSpec], Any] = default_agent_factory,
        replay_factory: Callable[..., ReplayStore] | None = None,
        hooks: Sequence[TrainerHooks] = (),
        resume: bool = False,
        progress_bars: bool = True,
    ) -> None:
        self.config = config
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self._env_factory = env_factory
        self._agent_factory = agent_factory
        self._replay_factory = replay_factory or ReplayStore.load
        self.hooks: list[TrainerHooks] = list(hooks)
        self.resume = resume
        self.progress_bars = progress_bars
        self.counters = Counters()
        self.env: TaskEnv | None = None
        self.agent: Any = None
        self.replay: ReplayStore | None = None
        self.offline: ReplayStore | None = None
        self.last_eval: EvalResult | None = None
        self._rng = np.random.default_rng(config.train.seed)
        self._stop = threading.Event()
        self._metrics: MetricsLogger | None = None
        self._started = time.monotonic()
        self._status = "created"
        self._best_score: float | None = None  # validation score of checkpoints/best.pt

    # -- control from other threads --------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the running episode or gradient step, checkpoint, and return from `run()`."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def progress(self) -> dict[str, Any]:
        """Counters and state for monitors (the ROS node publishes these as diagnostics)."""
        d = self.counters.as_dict()
        d.update(status=self._status, pid=os.getpid(), elapsed_s=round(time.monotonic() - self._started, 1),
                 num_iterations=self.config.train.num_iterations, time=time.time())
        if self.last_eval is not None:
            d["last_eval_success_per_position"] = self.last_eval.success_per_position
        return d

    # -- set-up ----------------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        rd = self.run_dir
        if rd.exists():
            stored = load_run_config(rd)
            if stored.identity() != self.config.identity():
                raise ConfigMismatchError(
                    f"{rd.root} holds a run with a different configuration ({stored.env}, preset "
                    f"{stored.preset}); choose another --run-dir, or resume it with its own config "
                    f"(`meld train --run-dir {rd.root} --resume`)")
            if not self.resume:
                raise RunDirError(f"{rd.root} already holds a run; pass --resume to continue it "
                                  "or choose another --run-dir")
            if stored.train.num_iterations != self.config.train.num_iterations:
                logger.info("iteration budget changed from %d to %d", stored.train.num_iterations,
                            self.config.train.num_iterations)
                rd.write_yaml(rd.config_path, dataclasses.asdict(self.config))
        elif self.resume and rd.root.exists() and any(rd.root.iterdir()):
            raise RunDirError(f"{rd.root} is not empty and has no config.yaml; "
                              "it is not a meld run directory")
        rd.make_dirs()
        if not rd.exists():
            rd.write_yaml(rd.config_path, dataclasses.asdict(self.config))

    def _check_tasks(self, env: TaskEnv) -> None:
        tasks = {"train": task_list(env.train_tasks), "eval": task_list(env.eval_tasks)}
        if self.run_dir.tasks_path.exists():
            if self.run_dir.read_json(self.run_dir.tasks_path) != json.loads(json.dumps(tasks)):
                raise ConfigMismatchError(
                    f"the environment's tasks differ from {self.run_dir.tasks_path}; the run was made "
                    "with another environment version or task seed")
        else:
            self.run_dir.write_json(self.run_dir.tasks_path, tasks)

    def _load_offline(self, env: TaskEnv) -> ReplayStore | None:
        if not self.config.offline_run:
            return None
        off = RunDir(self.config.offline_run)
        if not off.exists():
            raise RunDirError(f"--offline-run {off.root} is not a meld run directory (no config.yaml)")
        off_cfg = load_run_config(off)
        if off_cfg.env != self.config.env:
            raise ConfigMismatchError(f"offline run {off.root} trained {off_cfg.env!r}, this run trains "
                                      f"{self.config.env!r}")
        mine = task_list(env.train_tasks)
        theirs = off.read_json(off.tasks_path)["train"] if off.tasks_path.exists() else None
        if theirs is None or json.loads(json.dumps(mine)) != theirs:
            raise ConfigMismatchError(
                f"the train tasks of offline run {off.root} differ from this run's; stage 2 needs the same "
                "environment config and task seed as stage 1 (only episode_length may differ)")
        store = ReplayStore.load(self.config.replay, len(env.train_tasks), off.episodes_dir)
        if store.total_episodes == 0:
            raise RunDirError(f"offline run {off.root} has no episodes under {off.episodes_dir}")
        frames = next(store.episodes(i)[0].num_frames for i in store.tasks_with_data())
        if frames < env.spec.episode_length + 1:
            raise ConfigMismatchError(f"offline episodes have {frames} frames, fewer than this run's "
                                      f"{env.spec.episode_length + 1}; use a stage-1 run with longer "
                                      "episodes")
        store.root = None  # read-only: nothing is ever written back into the stage-1 run
        logger.info("offline data: %d episodes from %s", store.total_episodes, off.root)
        return store

    def _restore(self) -> None:
        """Load the newest checkpoint (if any) and reconcile the counters with the stored episodes."""
        assert self.replay is not None
        path = self.run_dir.latest_checkpoint() if self.resume else None
        if path is not None:
            state = self.run_dir.load_checkpoint(path)
            self.agent.load_state_dict(state["agent"])
            self.counters = Counters.from_dict(state["counters"])
            self._rng.bit_generator.state = state["trainer_rng"]
            logger.info("resumed from %s (%s)", path.name, self.counters.as_dict())
        if self.counters.phase == "done" and self.counters.iteration < self.config.train.num_iterations:
            self.counters.phase = "train"  # resumed with a larger iteration budget
        ckpt_episodes = self.counters.episodes
        E = self.config.train.episodes_per_trial
        self.counters.episodes = self.replay.total_episodes
        self.counters.env_steps = self.replay.total_steps
        new = self.counters.episodes - ckpt_episodes
        if self.counters.phase == "train" and new > 0:
            # Trials collected after the checkpoint count as iterations whose training was lost.
            self.counters.iteration += new // (E * self.config.train.tasks_to_collect_per_iter)
        best = self.run_dir.best_info() if self.resume else None
        if best is not None:
            self._best_score = float(best["score"])
        if self.resume:
            logger.info("replay on disk: %d episodes, %d env steps (%d newer than the checkpoint)",
                        self.counters.episodes, self.counters.env_steps, max(new, 0))

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> Counters:
        """Run (or continue) training until the budget is spent or a stop is requested."""
        self._started = time.monotonic()
        self._prepare_run_dir()
        self._metrics = MetricsLogger(self.run_dir.metrics_csv, self.run_dir.tb_dir).open()
        try:
            self.env = self._env_factory(self.config)
            self._check_spec(self.env.spec)
            self._check_tasks(self.env)
            self.offline = self._load_offline(self.env)
            self.agent = self._agent_factory(self.config, self.env.spec)
            self.replay = self._replay_factory(self.config.replay, len(self.env.train_tasks),
                                               self.run_dir.episodes_dir, offline=self.offline)
            self._restore()
            self._status = "running"
            self._write_progress()
            if self.counters.phase == "warmup":
                self._warmup()
            if self.counters.phase == "pretrain" and not self.stop_requested:
                self._pretrain()
            if self.counters.phase == "train" and not self.stop_requested:
                self._train_loop()
            if self.counters.phase == "done" and not self.stop_requested and self.last_eval is None:
                self._evaluate(final=True)
            if self.counters.phase != "warmup":
                self.checkpoint()
            self._status = "stopped" if self.stop_requested else "finished"
            self._write_progress()
            return self.counters
        except BaseException:
            self._status = "failed"
            self._write_progress()
            raise
        finally:
            try:
                if self.env is not None:
                    self.env.close()
            finally:
                self._metrics.close()

    def _check_spec(self, spec: EnvSpec) -> None:
        if tuple(spec.image_shape) != tuple(self.config.model.image_shape):
            raise ConfigMismatchError(f"environment images are {spec.image_shape} but the model expects "
                                      f"{self.config.model.image_shape}; fix model.image_shape in the config")

    def _set_phase(self, phase: str) -> None:
        self.counters.phase = phase
        for h in self.hooks:
            h.on_phase(self, phase)
        self._write_progress()

    def _bar(self, total: int, initial: int, desc: str, unit: str) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False,
                    disable=None if self.progress_bars else True, dynamic_ncols=True)

    def _warmup(self) -> None:
        """Random-policy trials on every train task; counts what is already on disk (resume)."""
        assert self.env is not None and self.replay is not None
        t = self.config.train
        E = t.episodes_per_trial
        self._set_phase("warmup")
        tasks = list(self.env.train_tasks)
        need = t.init_collect_trials_per_task * E
        total = need * len(tasks)
        have = sum(min(self.replay.num_episodes(task.index), need) for task in tasks)
        with self._bar(total, have, "warm-up (random policy)", "episode") as bar:
            for task in tasks:
                while self.replay.num_episodes(task.index) < need and not self.stop_requested:
                    left = need - self.replay.num_episodes(task.index)
                    run_trial(self.env, task, min(E, left), agent=None, rng=self._rng,
                              on_episode=lambda ep, task=task: (self._store(task, ep), bar.update(1)),
                              should_stop=lambda: self.stop_requested)
        if not self.stop_requested:
            self._set_phase("pretrain")

    def _pretrain(self) -> None:
        assert self.replay is not None
        target = int(self.replay.total_steps * self.config.train.init_model_train_ratio)
        self._set_phase("pretrain")
        with self._bar(target, self.counters.pretrain_steps, "model pre-training", "step") as bar:
            sums: dict[str, float] = {}
            n = 0
            while self.counters.pretrain_steps < target and not self.stop_requested:
                m = self._model_step()
                self.counters.pretrain_steps += 1
                n += 1
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.update(1)
                if n % 50 == 0 or self.counters.pretrain_steps == target:
                    self._log("model", {k: v / n for k, v in sums.items()})
                    sums, n = {}, 0
                    self._write_progress()
        if not self.stop_requested:
            self._set_phase("train")
            self.checkpoint()
            if self.config.train.eval_at_start:
                self._evaluate()

    def _model_step(self) -> dict[str, float]:
        assert self.replay is not None
        batch = self.replay.sample_model_batch(self._rng, self.config.train.episodes_per_trial)
        metrics = self.agent.update_model(batch)
        self.counters.model_steps += 1
        return metrics

    def _ac_step(self) -> dict[str, float]:
        assert self.replay is not None
        batch = self.replay.sample_ac_batch(self._rng, self.config.train.episodes_per_trial)
        metrics = self.agent.update_actor_critic(batch)
        self.counters.ac_steps += 1
        return metrics

    def _train_loop(self) -> None:
        assert self.env is not None and self.replay is not None
        t = self.config.train
        sums: dict[str, dict[str, float]] = {"model": {}, "ac": {}}
        counts = {"model": 0, "ac": 0}
        speed_mark = (time.monotonic(), self.counters.env_steps, self.counters.model_steps,
                      self.counters.ac_steps)
        with self._bar(t.num_iterations, min(self.counters.iteration, t.num_iterations),
                       "meta-training", "iter") as bar:
            while self.counters.iteration < t.num_iterations and not self.stop_requested:
                # -- collect: one trial on each of `tasks_to_collect_per_iter` train tasks --
                before = self.counters.env_steps
                n_tasks = min(t.tasks_to_collect_per_iter, len(self.env.train_tasks))
                for ti in self._rng.choice(len(self.env.train_tasks), size=n_tasks, replace=False):
                    task = self.env.train_tasks[int(ti)]
                    trial = run_trial(self.env, task, t.episodes_per_trial, agent=self.agent,
                                      reward_input=self.config.model.reward_input,
                                      on_episode=lambda ep, task=task: self._store(task, ep),
                                      should_stop=lambda: self.stop_requested)
                    self._log("collect", {
                        **{f"success_{e.position_in_trial}": float(e.success) for e in trial.episodes},
                        **{f"reached_{e.position_in_trial}": float(e.reached) for e in trial.episodes},
                        **{f"dense_return_{e.position_in_trial}": e.dense_return for e in trial.episodes},
                    })
                if self.stop_requested:
                    break
                collected = self.counters.env_steps - before
                # -- train: gradient steps in proportion to the env steps just collected --
                train_model = (t.stop_model_training_step is None or self.counters.iteration == 0
                               or self.counters.global_step < t.stop_model_training_step)
                model_ratio = t.model_train_ratio if train_model else 0.0
                for kind, ratio, step in (("model", model_ratio, self._model_step),
                                          ("ac", t.ac_train_ratio, self._ac_step)):
                    for _ in range(int(collected * ratio)):
                        if self.stop_requested:
                            break
                        for k, v in step().items():
                            sums[kind][k] = sums[kind].get(k, 0.0) + float(v)
                        counts[kind] += 1
                if self.stop_requested:
                    break  # this iteration's training is incomplete: do not count it
                self.counters.iteration += 1
                bar.update(1)
                it = self.counters.iteration
                if it % t.log_interval == 0:
                    for kind in ("model", "ac"):
                        if counts[kind]:
                            self._log(kind, {k: v / counts[kind] for k, v in sums[kind].items()})
                    sums, counts = {"model": {}, "ac": {}}, {"model": 0, "ac": 0}
                    now = time.monotonic()
                    dt = max(now - speed_mark[0], 1e-9)
                    self._log("speed", {
                        "env_steps_per_s": (self.counters.env_steps - speed_mark[1]) / dt,
                        "model_steps_per_s": (self.counters.model_steps - speed_mark[2]) / dt,
                        "ac_steps_per_s": (self.counters.ac_steps - speed_mark[3]) / dt,
                        "global_steps_per_s": (self.counters.global_step - sum(speed_mark[1:])) / dt,
                    })
                    speed_mark = (now, self.counters.env_steps, self.counters.model_steps,
                                  self.counters.ac_steps)
                    self._write_progress()
                if it % t.eval_interval == 0 or it == t.num_iterations:
                    self._evaluate(final=it == t.num_iterations)
                if it % t.checkpoint_interval == 0:
                    self.checkpoint()
        if not self.stop_requested and self.counters.iteration >= t.num_iterations:
            self._set_phase("done")

    # -- side work -------------------------------------------------------------------------------
    def _store(self, task: Task, data: EpisodeData) -> None:
        assert self.replay is not None
        episode = Episode(images=data.images, actions=data.actions, dense_rewards=data.dense_rewards,
                          sparse_rewards=data.sparse_rewards, successes=data.successes,
                          task_index=task.index,
                          meta={"position_in_trial": data.position_in_trial, "phase": self.counters.phase,
                                "iteration": self.counters.iteration, "task": dict(task.params)})
        self.replay.add(episode)
        self.counters.episodes += 1
        self.counters.env_steps += episode.num_steps
        for h in self.hooks:
            h.on_episode(self, episode, data)
        self._write_progress()

    def _log(self, prefix: str, values: dict[str, float]) -> None:
        if self._metrics is not None:
            self._metrics.log(prefix, values, self.counters.global_step, self.counters.env_steps)
        for h in self.hooks:
            h.on_train_metrics(self, prefix, values)

    def _write_progress(self) -> None:
        self.run_dir.write_progress(self.progress())

    def _evaluate(self, final: bool = False) -> EvalResult:
        assert self.env is not None
        t = self.config.train
        eval_tasks = list(self.env.eval_tasks)
        order = self._rng.permutation(len(eval_tasks))
        chosen = [eval_tasks[int(order[i % len(order)])] for i in range(t.eval_trials)]
        self._status = "evaluating"
        self._write_progress()
        result = evaluate(self.agent, self.env, chosen, t.episodes_per_trial, 1,
                          self.config.model.reward_input, deterministic=t.eval_deterministic,
                          record_trials=t.video_trials,
                          progress=self.progress_bars)
        self.counters.evaluations += 1
        self.last_eval = result
        self._log("eval", result.scalars())
        validation = self._validate() if t.validation_trials > 0 else None
        self._status = "running"
        out = self.run_dir.eval_dir / f"step_{self.counters.env_steps:09d}"
        overview = trial_overview(self.env, result)
        write_eval_artefacts(result, out, fps=self.env.spec.control_hz,
                             episode_length=self.env.spec.episode_length,
                             extra={"counters": self.counters.as_dict()}, overview=overview)
        record = {"counters": self.counters.as_dict(), "success_per_position": result.success_per_position,
                  "reached_per_position": result.reached_per_position,
                  "dense_return_per_position": result.dense_return_per_position,
                  "num_trials": len(result.trials), "final": final}
        if validation is not None:
            record["validation_success_per_position"] = validation.success_per_position
        self.run_dir.append_eval_record(record)
        if final:
            write_eval_artefacts(result, self.run_dir.eval_dir, fps=self.env.spec.control_hz,
                                 episode_length=self.env.spec.episode_length,
                                 extra={"counters": self.counters.as_dict(), "source": "end of training"},
                                 overview=overview)
        logger.info("eval at %d env steps: success per episode position %s (at any frame: %s)",
                    self.counters.env_steps, [round(s, 2) for s in result.success_per_position],
                    [round(s, 2) for s in result.reached_per_position])
        for h in self.hooks:
            h.on_eval(self, result)
        self._write_progress()
        return result

    def _validate(self) -> EvalResult:
        """Trials on train tasks; keep checkpoints/best.pt when the last episode did at least as well."""
        assert self.env is not None
        t = self.config.train
        tasks = validation_tasks(self.env.train_tasks, t.validation_trials)
        result = evaluate(self.agent, self.env, tasks, t.episodes_per_trial, 1,
                          self.config.model.reward_input, deterministic=t.eval_deterministic)
        self._log("validation", result.scalars())
        score = result.success_per_position[-1]
        if self._best_score is None or score >= self._best_score:
            self._best_score = score
            self.run_dir.save_best_checkpoint(self._checkpoint_state(), {
                "score": score,
                "metric": f"episode-{t.episodes_per_trial} success on {len(result.trials)} train-task trials",
                "validation_success_per_position": result.success_per_position,
                "counters": self.counters.as_dict(),
                "time": time.time(),
            })
            logger.info("best checkpoint so far: validation success %s at %d env steps",
                        [round(s, 2) for s in result.success_per_position], self.counters.env_steps)
        return result

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": 1,
            "agent": self.agent.state_dict(),
            "counters": self.counters.as_dict(),
            "trainer_rng": self._rng.bit_generator.state,
            "config": dataclasses.asdict(self.config),
            "time": time.time(),
        }

    def checkpoint(self) -> Path:
        """Write an atomic checkpoint of the agent, counters and RNG state now."""
        path = self.run_dir.save_checkpoint(self._checkpoint_state(), self.counters.global_step,
                                            self.config.train.keep_checkpoints)
        for h in self.hooks:
            h.on_checkpoint(self, path)
        logger.debug("checkpoint %s", path)
        return path


def run_training(
    config: RunConfig | None,
    run_dir: str | Path,
    *,
    env_factory: Callable[[RunConfig], TaskEnv] | None = None,
    resume: bool = False,
    device: str | None = None,
    hooks: Sequence[TrainerHooks] = (),
    progress_bars: bool = True,
    trainer_callback: Callable[[Trainer], None] | None = None,
) -> Trainer:
    """Train (or resume) the run in `run_dir`; used by `meld train` and by the ROS agent node.

    `config=None` with `resume=True` continues the stored run with its own config. `device`
    overrides the config's device (the only field that may change between a run and its resume).
    `trainer_callback` receives the Trainer before it starts (e.g. to keep a handle for
    `request_stop()` from a signal handler or another thread).
    """
    rd = RunDir(run_dir)
    if config is None:
        if not resume:
            raise ValueError("run_training needs a config unless it resumes an existing run")
        config = load_run_config(rd)
    if device is not None:
        config = dataclasses.replace(config, device=dataclasses.replace(config.device, device=device))
    trainer = Trainer(config, rd, env_factory=env_factory or default_env_factory, hooks=hooks, resume=resume,
                      progress_bars=progress_bars)
    if trainer_callback is not None:
        trainer_callback(trainer)
    trainer.run()
    return trainer


def load_run_agent(run_dir: str | Path, *, checkpoint: str | Path | None = None, device: str | None = None,
                   env_factory: Callable[[RunConfig], TaskEnv] | None = None,
                   ) -> tuple[RunDir, RunConfig, dict[str, Any], TaskEnv, Any]:
    """A run's config, checkpoint state, a fresh env and the agent restored from the checkpoint
    (a file, "best" (checkpoints/best.pt) or "latest"; default: the run's latest). The caller closes
    the env."""
    rd = RunDir(run_dir)
    if not rd.exists():
        raise RunDirError(f"{rd.root} is not a meld run directory (no config.yaml)")
    config = load_run_config(rd)
    if device is not None:
        config = dataclasses.replace(config, device=dataclasses.replace(config.device, device=device))
    state = rd.load_checkpoint(rd.resolve_checkpoint(checkpoint))
    env = (env_factory or default_env_factory)(config)
    try:
        agent = default_agent_factory(config, env.spec)
        try:
            agent.load_state_dict(state["agent"])
        except Exception as exc:
            raise CheckpointError(f"checkpoint does not fit this run's agent ({exc})") from None
    except BaseException:
        env.close()
        raise
    return rd, config, state, env, agent


def evaluate_run(run_dir: str | Path, *, episodes_per_trial: int | None = None, rounds: int = 3,
                 checkpoint: str | Path | None = None, device: str | None = None, video_trials: int = 2,
                 deterministic: bool | None = None,
                 env_factory: Callable[[RunConfig], TaskEnv] | None = None,
                 ) -> tuple[EvalResult, dict[str, Any]]:
    """Meta-test a run's checkpoint on all held-out tasks; writes run_dir/eval/summary.json etc."""
    rd, config, state, env, agent = load_run_agent(run_dir, checkpoint=checkpoint, device=device,
                                                   env_factory=env_factory)
    try:
        E = episodes_per_trial or config.train.episodes_per_trial
        det = config.train.eval_deterministic if deterministic is None else deterministic
        result = evaluate(agent, env, list(env.eval_tasks), E, rounds, config.model.reward_input,
                          deterministic=det, record_trials=video_trials, progress=True)
        summary = write_eval_artefacts(result, rd.eval_dir, fps=env.spec.control_hz,
                                       episode_length=env.spec.episode_length,
                                       extra={"counters": state["counters"], "rounds": rounds,
                                              "deterministic": det, "source": "meld eval",
                                              "checkpoint": str(checkpoint or "latest")},
                                       overview=trial_overview(env, result))
    finally:
        env.close()
    return result, summary
