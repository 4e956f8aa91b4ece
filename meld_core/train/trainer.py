"""Meta-training (Algorithm 1 of the MELD paper): one loop for the simulation and the real robot.

    meld train --env point_nav --preset smoke --run-dir runs/point_smoke

The loop, as the reference runs it (github.com/tonyzhaozh/meld, `run_meld.py`):

1. warm-up: `init_collect_trials_per_task` trials per train task with a uniform random policy;
2. model pre-training: int(warm-up env steps x init_model_train_ratio) model steps;
3. iterations: pick a train task -> collect one trial of E episodes with the current policy (the
   belief carried across the episode resets) -> int(env steps x model_train_ratio) model steps and
   int(env steps x ac_train_ratio) actor-critic steps.

That is all `Trainer` does. Side work hangs on hooks (`meld_core.train.hooks`): metrics, periodic
evaluation with train-task validation and the best checkpoint (`meld_core.train.evaluation`),
checkpoints, progress.json and what a person watching sees (`ConsoleProgress`); setting the run up
(its config, the run directory, offline data, what a resumed run owes) is `meld_core.train.setup`.
`run()` builds the env, agent and replay and checks them before it creates or changes anything in
the run directory, so a start that fails leaves no trace.

The `Trainer` is built from factories (environment, agent, replay) and a run directory, so the
ROS agent node runs this same loop with a ROS-backed `TaskEnv` whose steps wait for the control
tick: nothing here assumes a fast or in-process environment. Every finished episode is stored by
the replay (atomic file per episode) before the hooks see it. `request_stop()` (from any thread)
ends the run cleanly: the running episode or gradient step finishes, a checkpoint is written,
`run()` returns; `env.close()` is always called. An environment that fails after the request (a
robot graph stopped by the same Ctrl-C) ends the running episode, which is dropped; the checkpoint
is written all the same.

Crash safety: a SIGKILL loses at most the running episode. On `resume`, the newest checkpoint gives
the networks, optimisers, RNG states and counters; episodes written after it are kept (they were
collected), episode ids continue without gaps or duplicates, and an iteration whose trial was
collected but whose gradient steps were lost is trained before the loop goes on, so a killed and
resumed run takes as many model and AC steps as one that was never interrupted. `run()` holds the
run directory's lock (`RunDir.lock`) throughout, so a second writer is refused, and it leaves a
final status in progress.json on every exit it sees ("finished", "stopped", "failed" with the error);
a resume reports a predecessor that was killed before it could.

One module of about 500 lines: the loop and the bookkeeping of its counters (resume, owed
iterations, stop points) are one state machine; side work lives in train/hooks.py and
train/evaluation.py, setup in train/setup.py.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.algo.agent import Agent
from meld_core.algo.replay import ReplayStore
from meld_core.config import RunConfig
from meld_core.envs.base import EnvSpec, TaskEnv
from meld_core.faults import crash_point
from meld_core.train.evaluation import EvalResult, EvaluationHook
from meld_core.train.hooks import CheckpointHook, ConsoleProgress, MetricsHook, ProgressHook, TrainerHooks
from meld_core.train.metrics import MetricsLogger
from meld_core.train.rollout import RolloutEpisode, run_trial
from meld_core.train.rundir import CHECKPOINT_FORMAT, RunDir, RunDirError
from meld_core.train.setup import (
    check_run_dir,
    check_spec,
    check_tasks,
    initial_weights,
    load_offline,
    load_run_config,
    owed_iterations,
    prepare_run_dir,
    task_lists,
)

logger = logging.getLogger(__name__)

PHASES = ("warmup", "pretrain", "train", "done")


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
    # Gradient steps already taken for the iteration in progress (a stop in its middle checkpoints
    # them): a resume takes only the rest, so the total matches an uninterrupted run.
    model_steps_in_iteration: int = 0
    ac_steps_in_iteration: int = 0

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


def default_agent_factory(config: RunConfig, spec: EnvSpec) -> Agent:
    """A `MeldAgent` for `config` on the device it names."""
    from meld_core.algo.agent import MeldAgent

    return MeldAgent(config.model, config.sac, spec.action_dim, device=config.device, seed=config.train.seed)


def default_env_factory(config: RunConfig) -> TaskEnv:
    from meld_core.envs.registry import make_env

    return make_env(config.env, config.build_env_config(), seed=config.train.seed)


class Trainer:
    """Meta-training on one `TaskEnv`; see the module docstring."""

    ROLE = "trainer"  # "actor" and "learner" are the roles of async mode (meld_core.train.async_mode)
    LOCK_PURPOSE = "training"
    LOCK_ROLES: tuple[str, ...] = ("actor", "learner")  # this process both collects and trains

    def __init__(
        self,
        config: RunConfig,
        run_dir: RunDir | str | Path,
        *,
        env_factory: Callable[[RunConfig], TaskEnv] = default_env_factory,
        agent_factory: Callable[[RunConfig, EnvSpec], Agent] = default_agent_factory,
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
        self.progress_bars = progress_bars
        self.hooks: list[TrainerHooks] = [*self._default_hooks(), *hooks]
        self.resume = resume
        self.counters = Counters()
        self.env: TaskEnv | None = None
        self.agent: Agent | None = None
        self.replay: ReplayStore | None = None
        self.last_eval: EvalResult | None = None
        self.rng = np.random.default_rng(config.train.seed)
        self._stop = threading.Event()
        self._metrics: MetricsLogger | None = None
        self._started = time.monotonic()
        self._status = "created"
        self._error: str | None = None  # why the run failed (progress.json "error")
        self._previous_status: str | None = None  # how the process before this resume ended
        self._owed: list[int] = []  # env steps of iterations collected before a resume but never trained
        self._trial_id = -1  # id of the first episode of the trial being collected

    # -- control and state, from any thread --------------------------------------------------
    def request_stop(self) -> None:
        """Finish the running episode (or drop it if the env fails from now on) or gradient step,
        checkpoint, and return from `run()`."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def progress(self) -> dict[str, Any]:
        """Counters and state for monitors (the ROS node publishes these as diagnostics)."""
        d = self.counters.as_dict()
        d.update(status=self._status, pid=os.getpid(), elapsed_s=round(time.monotonic() - self._started, 1),
                 num_iterations=self.config.train.num_iterations, time=time.time())
        if self._error is not None:
            d["error"] = self._error
        if self._previous_status is not None:
            d["previous_status"] = self._previous_status
        if self.last_eval is not None:
            d["last_eval_success_per_position"] = self.last_eval.success_per_position
        overruns = getattr(self.env, "overruns", None)  # control ticks the policy overran (robot envs)
        if overruns is not None:
            d["overruns"] = int(overruns)
        if self.counters.phase == "warmup" and self.replay is not None:
            d["warmup_episodes"], d["warmup_total"] = self.warmup_episodes()
        return d

    def _default_hooks(self) -> list[TrainerHooks]:
        console = [ConsoleProgress()] if self.progress_bars else []
        return [MetricsHook(), EvaluationHook(), CheckpointHook(), ProgressHook(), *console]

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> Counters:
        """Run (or continue) training until the budget is spent or a stop is requested.

        The run directory is locked for the whole run (`RunDir.lock`: a second writer is refused);
        progress.json ends with status "finished", "stopped" or "failed" (with the error)."""
        self._started = time.monotonic()
        with self.run_dir.lock(self.LOCK_PURPOSE, self.LOCK_ROLES):
            check_run_dir(self.run_dir, self.config, self.resume)
            self._check_previous_exit()
            try:
                self._build()  # env, agent, replay, checkpoint and every check: nothing written yet
                prepare_run_dir(self.run_dir, self.config, task_lists(self.env), self.env.spec)
                self._metrics = self._open_metrics()
                self.emit("on_start")
                self.set_status("running")
                try:
                    if self.counters.phase == "warmup":
                        self._warmup()
                    if self.counters.phase == "pretrain" and not self.stop_requested:
                        self._pretrain()
                    if self.counters.phase == "train" and not self.stop_requested:
                        self._train_loop()
                except Exception as exc:
                    if not self.stop_requested:
                        raise
                    # A stop often takes the robot down with it (Ctrl-C reaches every node): what fails
                    # after the request ends the running episode, which is dropped; the rest is saved.
                    logger.warning("stopping: the running episode ended with %s: %s; it is not stored",
                                   type(exc).__name__, exc)
                self.emit("on_end")
                self.set_status("stopped" if self.stop_requested else "finished")
                return self.counters
            except BaseException as exc:
                self._error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if self._metrics is not None:  # the run directory exists
                    try:
                        self.set_status("failed")
                    except OSError as write_error:  # e.g. the disk that failed the run is still full
                        logger.error("could not record the failure in %s: %s", self.run_dir.progress_path,
                                     write_error)
                raise
            finally:
                try:
                    if self.env is not None:
                        self.env.close()
                finally:
                    if self._metrics is not None:
                        self._metrics.close()

    def _check_previous_exit(self) -> None:
        """A resumed run whose progress.json still says it is running was killed or crashed: say so."""
        previous = self.run_dir.read_progress(self.progress_path) if self.resume else None
        if not previous:
            return
        status = previous.get("status")
        if status in ("created", "running", "evaluating"):
            logger.warning("the previous process on %s (pid %s) ended while %s, without a final status: it "
                           "was killed or crashed; continuing from its last checkpoint and stored episodes",
                           self.run_dir.root, previous.get("pid", "?"), status)
            status = "crashed"
        self._previous_status = status

    def _build(self) -> None:
        """Env, agent and replay from the factories; counters from the newest checkpoint (resume)."""
        self.env = self._env_factory(self.config)
        check_spec(self.config, self.env.spec)
        check_tasks(self.run_dir, self.env)
        offline = load_offline(self.config, self.env)
        self.agent = self._agent_factory(self.config, self.env.spec)
        self.replay = self._replay_factory(self.config.replay, len(self.env.train_tasks),
                                           self.run_dir.episodes_dir, offline=offline)
        self._restore()

    def _restore(self) -> None:
        """Counters, agent and RNG from the newest checkpoint (resume); what the run owes."""
        found = self.run_dir.load_resume_checkpoint() if self.resume else None
        if found is not None:
            path, state = found
            if state["agent"].get("weights_only"):
                raise RunDirError(f"{self.run_dir.root} holds an exported policy (networks only): meld eval "
                                  "meta-tests it; to train from it, start a new run with init_from set to it")
            self.agent.load_state_dict(state["agent"])
            self.counters = Counters.from_dict(state["counters"])
            self.rng.bit_generator.state = state["trainer_rng"]
            logger.info("resumed from %s (%s)", path.name, self.counters.as_dict())
        elif self.config.init_from:
            self.agent.load_weights(initial_weights(self.config.init_from))
        if self.counters.phase == "done" and self.counters.iteration < self.config.train.num_iterations:
            self.counters.phase = "train"  # resumed with a larger iteration budget
        t = self.config.train
        self._owed = owed_iterations(self.replay, self.counters.iteration, t.episodes_per_trial,
                                     min(t.tasks_to_collect_per_iter, len(self.env.train_tasks)))
        new = self.replay.total_episodes - self.counters.episodes
        self.counters.episodes, self.counters.env_steps = self.replay.total_episodes, self.replay.total_steps
        if self.resume:
            logger.info("replay on disk: %d episodes, %d env steps (%d newer than the checkpoint; %d "
                        "iteration(s) to train)", self.counters.episodes, self.counters.env_steps, new,
                        len(self._owed))

    # -- Algorithm 1 -----------------------------------------------------------------------------
    def warmup_episodes(self) -> tuple[int, int]:
        """(collected, needed) warm-up episodes over all train tasks; what is on disk counts (resume)."""
        need, tasks = self._warmup_per_task(), self.env.train_tasks
        return sum(min(self.replay.num_episodes(task.index), need) for task in tasks), need * len(tasks)

    def _warmup_per_task(self) -> int:
        return self.config.train.init_collect_trials_per_task * self.config.train.episodes_per_trial

    def _warmup(self) -> None:
        """Random-policy trials on every train task; counts what is already on disk (resume)."""
        t, tasks, need = self.config.train, list(self.env.train_tasks), self._warmup_per_task()
        self._set_phase("warmup")
        for task in tasks:
            while self.replay.num_episodes(task.index) < need and not self.stop_requested:
                left = need - self.replay.num_episodes(task.index)
                run_trial(self.env, task, min(t.episodes_per_trial, left), agent=None, rng=self.rng,
                          on_episode=self._store, on_step=self._env_step,
                          should_stop=lambda: self.stop_requested)
        if not self.stop_requested:
            self._set_phase("pretrain")

    def _pretrain(self) -> None:
        self._set_phase("pretrain")
        target = self._pretrain_steps()
        while self.counters.pretrain_steps < target and not self.stop_requested:
            self.counters.pretrain_steps += 1
            self._gradient_step("model")
        if not self.stop_requested:
            self._set_phase("train")

    def _train_loop(self) -> None:
        t = self.config.train
        while self.counters.iteration < t.num_iterations and not self.stop_requested:
            collected = self._next_iteration()
            if self.stop_requested:
                break  # an unfinished trial stays as data and is not an iteration
            # -- train: gradient steps in proportion to the env steps just collected --
            if not self._train(collected):
                break  # cut short: not counted; a resume takes the rest of its gradient steps
            self.counters.model_steps_in_iteration = self.counters.ac_steps_in_iteration = 0
            self.counters.iteration += 1
            self.emit("on_iteration")
        if not self.stop_requested and self.counters.iteration >= t.num_iterations:
            self._set_phase("done")

    def _next_iteration(self) -> int:
        """The env steps of the next iteration: one trial on each of `tasks_to_collect_per_iter` train
        tasks, unless a resumed run still owes the gradient steps of a trial it had collected."""
        return self._owed.pop(0) if self._owed else self._collect()

    def _collect(self) -> int:
        t, before = self.config.train, self.counters.env_steps
        n_tasks = min(t.tasks_to_collect_per_iter, len(self.env.train_tasks))
        for ti in self.rng.choice(len(self.env.train_tasks), size=n_tasks, replace=False):
            trial = run_trial(self.env, self.env.train_tasks[int(ti)], t.episodes_per_trial, agent=self.agent,
                              reward_input=self.config.model.reward_input, on_episode=self._store,
                              on_step=self._env_step, should_stop=lambda: self.stop_requested)
            if len(trial.episodes) == t.episodes_per_trial:
                self.emit("on_trial", trial)
        return self.counters.env_steps - before

    def _train(self, env_steps: int) -> bool:
        """int(env_steps x ratio) model steps (unless the model is frozen), then AC steps; False when
        a stop request cut them short."""
        t = self.config.train
        train_model = (t.stop_model_training_step is None or self.counters.iteration == 0
                       or self.counters.global_step < t.stop_model_training_step)
        c = self.counters
        for kind, ratio in (("model", t.model_train_ratio if train_model else 0.0), ("ac", t.ac_train_ratio)):
            done = f"{kind}_steps_in_iteration"
            while getattr(c, done) < int(env_steps * ratio):
                if self.stop_requested:
                    return False
                self._gradient_step(kind)
                setattr(c, done, getattr(c, done) + 1)
        return not self.stop_requested

    def _gradient_step(self, kind: str) -> None:
        E = self.config.train.episodes_per_trial
        if kind == "model":
            metrics = self.agent.update_model(self.replay.sample_model_batch(self.rng, E))
            self.counters.model_steps += 1
        else:
            metrics = self.agent.update_actor_critic(self.replay.sample_ac_batch(self.rng, E))
            self.counters.ac_steps += 1
        crash_point("gradient_step", kind)
        self.emit("on_gradient_step", kind, metrics)

    # -- what the loop shares with its hooks -------------------------------------------------------
    def _store(self, rollout: RolloutEpisode) -> None:
        """Stamp the episode with the run, phase, iteration and trial it belongs to and the gradient steps
        of the policy that acted (its weights: checkpoints are named after the global step), and store it."""
        episode = rollout.episode
        if rollout.position_in_trial == 0:
            self._trial_id = self.replay.next_episode_id()
        episode.meta.update(run=self.run_dir.root.resolve().name, phase=self.counters.phase,
                            iteration=self.counters.iteration, trial=self._trial_id)
        episode.meta.setdefault("policy", {}).update(model_steps=self.counters.model_steps,
                                                     ac_steps=self.counters.ac_steps)
        self.replay.add(episode)
        crash_point("episode_stored", self.counters.phase)
        self.counters.episodes += 1
        self.counters.env_steps += episode.num_steps
        self.emit("on_episode", rollout)

    def emit(self, event: str, *args: Any) -> None:
        """Call `event` on every hook, in order."""
        for hook in self.hooks:
            getattr(hook, event)(self, *args)

    def log(self, prefix: str, values: dict[str, float], *, step: int | None = None) -> None:
        """Scalars to TensorBoard (x: env steps, or `step`) and metrics.csv at the current counters."""
        if self._metrics is not None:
            self._metrics.log(prefix, values, self.counters.global_step, self.counters.env_steps, step=step)

    @property
    def metrics(self) -> MetricsLogger | None:
        """The run's TensorBoard/CSV writer while the run is open (hooks add images, videos, text)."""
        return self._metrics

    def set_status(self, status: str) -> None:
        self._status = status
        self.write_progress()

    @property
    def progress_path(self) -> Path:
        """This process's progress file (progress.json; the async actor has its own)."""
        return self.run_dir.progress_path

    def write_progress(self) -> None:
        self.run_dir.write_progress(self.progress(), self.progress_path)

    def _open_metrics(self) -> MetricsLogger:
        return MetricsLogger(self.run_dir.metrics_csv, self.run_dir.tb_dir).open()

    def _env_step(self) -> None:
        """The environment took a step while collecting (warm-up or training)."""
        crash_point("env_step", self.counters.phase)

    def _set_phase(self, phase: str) -> None:
        self.counters.phase = phase
        self.emit("on_phase", phase)

    def _pretrain_steps(self) -> int:
        """Model pre-training steps: in proportion to the warm-up's env steps (the replay holds only them)."""
        return int(self.replay.total_steps * self.config.train.init_model_train_ratio)

    def phase_progress(self) -> tuple[int, int, str]:
        """(done, total, unit) of the running phase: warm-up episodes, pre-training model steps or
        training iterations (for progress displays)."""
        c, t = self.counters, self.config.train
        if c.phase == "warmup" and self.replay is not None and self.env is not None:
            return (*self.warmup_episodes(), "episodes")
        if c.phase == "pretrain":
            return c.pretrain_steps, max(self._pretrain_steps(), c.pretrain_steps), "model steps"
        return min(c.iteration, t.num_iterations), t.num_iterations, "iterations"

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "agent": self.agent.state_dict(),
            "counters": self.counters.as_dict(),
            "trainer_rng": self.rng.bit_generator.state,
            "config": dataclasses.asdict(self.config),
            "time": time.time(),
        }

    def checkpoint(self) -> Path:
        """Write an atomic checkpoint of the agent, counters and RNG state now."""
        path = self.run_dir.save_checkpoint(self.checkpoint_state(), self.counters.global_step,
                                            self.config.train.keep_checkpoints)
        logger.debug("checkpoint %s", path)
        self.emit("on_checkpoint", path)
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
    mode: str | None = None,
) -> Trainer:
    """Train (or resume) the run in `run_dir`; used by `meld train` and by the ROS agent node.

    `config=None` with `resume=True` continues the stored run with its own config. `device`
    overrides the config's device (it may change between a run and its resume, as the iteration
    budget may). `progress_bars` adds a `ConsoleProgress` hook (a bar on a terminal, status lines
    elsewhere). `trainer_callback` receives the Trainer before it starts (e.g. to keep a handle for
    `request_stop()` from a signal handler or another thread). With `config.train.mode == "async"`
    (or `mode`, which may change on resume too) this process is the actor and a child process the
    learner (`meld_core.train.async_mode.run_async`); the returned trainer is then the actor.
    """
    rd = RunDir(run_dir)
    if config is None:
        if not resume:
            raise ValueError("run_training needs a config unless it resumes an existing run")
        config = load_run_config(rd)
    if device is not None:
        config = dataclasses.replace(config, device=dataclasses.replace(config.device, device=device))
    if mode is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, mode=mode))
    if config.train.mode == "async":
        from meld_core.train.async_mode import run_async

        return run_async(config, rd.root, env_factory=env_factory or default_env_factory, resume=resume,
                         hooks=hooks, progress_bars=progress_bars, trainer_callback=trainer_callback,
                         learner_device=device)
    trainer = Trainer(config, rd, env_factory=env_factory or default_env_factory, hooks=hooks, resume=resume,
                      progress_bars=progress_bars)
    if trainer_callback is not None:
        trainer_callback(trainer)
    trainer.run()
    return trainer

