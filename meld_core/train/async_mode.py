"""Async mode: an actor collects while a learner trains, two processes that meet in the run directory.

    meld train --env widowx_insertion --preset small --run-dir runs/wx --mode async
    python -m meld_core.train.async_mode learner --run-dir runs/wx    # a learner alone (another machine)

`TrainConfig.mode = "async"` splits Algorithm 1 (meld_core.train.trainer) into two roles of the same
`Trainer`, each a subclass that keeps its loop and hooks and replaces what the other role does:

- **Actor** (this process; on the robot, the ROS agent node): the warm-up, then for every iteration
  one trial per task with the newest published weights, loaded between trials so that one trial's
  belief is filtered by one model. Episodes are written atomically as in alternate mode, stamped
  with their iteration and trial. It may run `TrainConfig.async_lead` iterations ahead of the
  learner, then waits: iteration i+1 is collected while the learner trains iteration i, the
  pipelined version of Algorithm 1. Evaluations, validation and best.pt (`EvaluationHook`) run here,
  in the process that owns the environment (the only one, on the robot), with the weights after
  exactly the iteration being evaluated (the actor waits for the learner to reach it).
- **Learner** (a child process, or `... async_mode learner` elsewhere): waits for the warm-up on
  disk, pre-trains, then trains every collected iteration in order, int(env steps x ratio) model
  and actor-critic steps each, so the gradient steps per env step are those of alternate mode (it
  waits when it is ahead). Its queue is `owed_iterations`, the bookkeeping that makes a resumed
  alternate run train what it owes. It publishes its networks (published/weights.pt, atomic and
  verified, weights only) after every iteration and every `async_publish_interval` gradient steps,
  and checkpoints as alternate mode.

Crash safety: every file is written atomically; the learner rebuilds its queue from its checkpoint
and the episodes on disk, the actor where it is from the episodes on disk. kill -9 of the actor
loses its running episode (its unfinished trial stays as data; the iteration is collected again);
kill -9 of the learner loses the gradient steps since its checkpoint, which it trains again. The
actor stops when its learner child dies (after the running trial); the learner stops when its actor
parent dies (a parent-death signal) or, elsewhere, when the actor shows no sign of life for
`async_timeout_s`. Either way `--resume` continues the run.

Two machines (robot PC actor, GPU workstation learner) take the same shape: only the run directory
is shared. That needs a shared filesystem with atomic rename (NFS, SMB and sshfs have it; the
flock run locks then guard each machine only), the learner started by hand (or by the launch
file) with `python -m meld_core.train.async_mode learner --run-dir <shared run>`, and liveness by
heartbeats (progress.json, progress_actor.json) instead of the parent-death signal. Copying
episodes over a network would replace only `ReplayStore.load_new` and `RunDir.publish_weights`.
Each process holds the run-directory lock of its role (`RunDir.lock`) and cleans up only the
temporary files of its own interrupted writes.

Cores: the actor runs on its own core(s) with `DeviceConfig.actor_threads` torch threads, the learner
on the others with one thread per core and sleeping OpenMP threads (meld_core.algo.runtime).

About 600 lines on purpose: the two roles are the two halves of one protocol through the run
directory (who waits for what, who publishes what, how each notices the other's death); they are
read together.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from meld_core.algo.agent import Agent
from meld_core.algo.replay import ReplayStore
from meld_core.algo.runtime import CpuPlan, openmp_env, pin_to, plan_cpus, usable_cpus
from meld_core.config import RunConfig
from meld_core.data.policy_export import WEIGHT_KEYS
from meld_core.envs.base import EnvSpec, TaskEnv
from meld_core.train.evaluation import EvaluationHook
from meld_core.train.hooks import CheckpointHook, ConsoleProgress, MetricsHook, ProgressHook, TrainerHooks
from meld_core.train.metrics import MetricsLogger
from meld_core.train.rundir import CHECKPOINT_FORMAT, RunDir, RunDirError
from meld_core.train.setup import (
    RecordedEnv,
    check_run_dir,
    collected_iterations,
    load_run_config,
    owed_iterations,
)
from meld_core.train.trainer import Trainer, default_agent_factory, default_env_factory

logger = logging.getLogger(__name__)

POLL_S = 0.2  # how often a waiting process looks at the run directory
HEARTBEAT_S = 5.0  # a waiting or training process rewrites its progress file at least this often


class PeerLostError(RuntimeError):
    """The other async process died or showed no sign of life for `async_timeout_s`."""


class _AsyncRole:
    """What both async processes do while they wait for each other: poll the run directory, keep
    their own progress file fresh (the other's sign of life), watch the other's."""

    _waited_s = 0.0
    _last_beat = 0.0

    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_S:
            self._last_beat = now
            self.write_progress()

    def _wait(self, ready: Callable[[], bool], what: str) -> bool:
        """Poll until `ready()`; False when a stop was requested (or the other process is gone)."""
        if ready():
            return True
        status, self._status = self._status, f"waiting for {what}"
        start = time.monotonic()
        try:
            while not self.stop_requested:
                if ready():
                    return True
                problem = self._peer_problem()
                if problem:
                    self._peer_lost(problem)
                    break
                self.heartbeat()
                time.sleep(POLL_S)
            return False
        finally:
            self._waited_s += time.monotonic() - start
            self._status = status

    def _peer_problem(self) -> str | None:
        """Why the other process cannot be waited for any longer (None while it is alive)."""
        exited = self._peer_exited()
        if exited:
            return exited
        path = self._peer_progress_path()
        beat = path.stat().st_mtime if path.is_file() else self._started_wall
        silent = time.time() - max(beat, self._started_wall)  # since its last sign of life, or our start
        if silent > self.config.train.async_timeout_s:
            return (f"the {self.PEER} has shown no sign of life for {silent:.0f} s "
                    f"(TrainConfig.async_timeout_s; its progress file: {path}); is it running?")
        return None

    PEER = ""  # the other role

    def _peer_exited(self) -> str | None:
        raise NotImplementedError

    def _peer_progress_path(self) -> Path:
        raise NotImplementedError

    def _peer_lost(self, problem: str) -> None:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------
# the learner
# ------------------------------------------------------------------------------------------------
class PublishHook(TrainerHooks):
    """The learner's publications: after pre-training, after every iteration, every
    `async_publish_interval` gradient steps and at the end."""

    def __init__(self) -> None:
        self._since = 0

    def on_phase(self, trainer: Learner, phase: str) -> None:
        if phase == "train":
            trainer.publish()

    def on_gradient_step(self, trainer: Learner, kind: str, metrics: dict[str, float]) -> None:
        self._since += 1
        if self._since >= trainer.config.train.async_publish_interval:
            trainer.publish()
        trainer.heartbeat()

    def on_iteration(self, trainer: Learner) -> None:
        trainer.publish()

    def on_end(self, trainer: Learner) -> None:
        if trainer.counters.phase in ("train", "done"):
            trainer.publish()

    def published(self) -> None:
        self._since = 0


class Learner(_AsyncRole, Trainer):
    """The async learner: pre-training and the gradient steps of every collected iteration."""

    ROLE = "learner"
    LOCK_PURPOSE = "async learner"
    LOCK_ROLES = ("learner",)

    def __init__(self, config: RunConfig, run_dir: RunDir | str | Path, *, parent_pid: int | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("env_factory", lambda cfg: RecordedEnv.read(self.run_dir))
        kwargs.setdefault("replay_factory", _reading_replay)
        super().__init__(config, run_dir, resume=True, **kwargs)
        self.parent_pid = parent_pid
        self.peer_lost: str | None = None
        self._started_wall = time.time()

    def _default_hooks(self) -> list[TrainerHooks]:
        self._publisher = PublishHook()
        console = [ConsoleProgress()] if self.progress_bars else []
        return [MetricsHook(), CheckpointHook(), ProgressHook(), self._publisher, *console]

    def _build(self) -> None:
        if not self._wait(lambda: self.run_dir.env_path.is_file() and self.run_dir.tasks_path.is_file(),
                          "the actor to record the environment (env.json, tasks.json)"):
            raise RunDirError("stopped before the actor recorded the environment")
        super()._build()

    # -- phases --------------------------------------------------------------------------------
    def _warmup(self) -> None:
        """Wait until the actor has stored the warm-up on every train task."""
        t, tasks = self.config.train, list(self.env.train_tasks)
        self._set_phase("warmup")
        need = t.init_collect_trials_per_task * t.episodes_per_trial

        def complete() -> bool:
            self._refresh()
            return all(self.replay.num_episodes(task.index) >= need for task in tasks)

        if self._wait(complete, "the actor's warm-up"):
            self._set_phase("pretrain")

    def _next_iteration(self) -> int:
        """The env steps of the oldest collected iteration not yet trained (waits for the actor)."""
        if not self._owed:
            self._wait(lambda: bool(self._refresh_owed()), f"the actor's iteration {self.counters.iteration}")
        return self._owed.pop(0) if self._owed else 0

    def _refresh(self) -> None:
        """Read the episodes the actor wrote since the last look."""
        if self.replay.load_new():
            self.counters.episodes = self.replay.total_episodes
            self.counters.env_steps = self.replay.total_steps

    def _refresh_owed(self) -> list[int]:
        self._refresh()
        t = self.config.train
        self._owed = owed_iterations(self.replay, self.counters.iteration, t.episodes_per_trial,
                                     min(t.tasks_to_collect_per_iter, len(self.env.train_tasks)))
        return self._owed

    # -- publishing and liveness ------------------------------------------------------------------
    def publish(self) -> None:
        """Write the newest networks for the actor (atomic, verified), then weights.json (their counters)."""
        c = self.counters
        version = c.model_steps + c.ac_steps
        agent = self.agent.state_dict()
        weights = {**{k: agent[k] for k in WEIGHT_KEYS}, "weights_only": True}  # as `meld export` writes
        state = {"format": CHECKPOINT_FORMAT, "agent": weights, "counters": c.as_dict(), "version": version}
        info = {"version": version, "counters": c.as_dict(), "time": time.time()}
        self.run_dir.publish_weights(state, info)
        self._publisher.published()
        logger.debug("published weights (iteration %d, %d gradient steps)", c.iteration, version)

    def progress(self) -> dict[str, Any]:
        return {**super().progress(), "role": "learner", "waited_for_actor_s": round(self._waited_s, 1)}

    def _peer_lost(self, problem: str) -> None:
        self.peer_lost = problem
        logger.error("%s; stopping the learner (it checkpoints; resume the run to continue)", problem)
        self.request_stop()

    PEER = "actor"

    def _peer_exited(self) -> str | None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            return f"the actor (pid {self.parent_pid}) exited"
        return None

    def _peer_progress_path(self) -> Path:
        return self.run_dir.actor_progress_path


# ------------------------------------------------------------------------------------------------
# the actor
# ------------------------------------------------------------------------------------------------
class _SyncBeforeEvaluation(TrainerHooks):
    """Before the actor evaluates, it waits for the weights of exactly the iteration it evaluates."""

    def on_iteration(self, trainer: Actor) -> None:
        if EvaluationHook.due(trainer):
            trainer.sync_policy(trainer.counters.iteration)

    def on_end(self, trainer: Actor) -> None:
        if trainer.counters.phase == "done" and not trainer.stop_requested:
            trainer.sync_policy(trainer.config.train.num_iterations)


class Actor(_AsyncRole, Trainer):
    """The async actor: warm-up, collection with the newest published weights, evaluation."""

    ROLE = "actor"
    LOCK_PURPOSE = "async actor"
    LOCK_ROLES = ("actor",)

    def __init__(self, config: RunConfig, run_dir: RunDir | str | Path, *,
                 learner: LearnerProcess | None = None, cpu_plan: CpuPlan | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("replay_factory", _frameless_replay)
        super().__init__(config, run_dir, resume=True, **kwargs)
        self.learner = learner
        self.cpu_plan = cpu_plan
        self.policy_version = -1
        self.policy_counters: dict[str, Any] = {}
        self._started_wall = time.time()

    def _default_hooks(self) -> list[TrainerHooks]:
        console = [ConsoleProgress()] if self.progress_bars else []
        return [MetricsHook(), _SyncBeforeEvaluation(), EvaluationHook(), ProgressHook(), *console]

    def _open_metrics(self) -> MetricsLogger:
        return MetricsLogger(self.run_dir.root / "metrics_actor.csv", self.run_dir.tb_dir / "actor").open()

    @property
    def progress_path(self) -> Path:
        return self.run_dir.actor_progress_path

    def progress(self) -> dict[str, Any]:
        return {**super().progress(), "role": "actor", "policy_version": self.policy_version,
                "waited_for_learner_s": round(self._waited_s, 1)}

    def _build(self) -> None:
        if self.cpu_plan is not None:  # before the env starts its render threads
            pin_to(self.cpu_plan.actor_cpus, self.cpu_plan.actor_threads)
        super()._build()
        if self.cpu_plan is not None:  # the agent may have set the learner's thread count
            torch.set_num_threads(self.cpu_plan.actor_threads)

    def _restore(self) -> None:
        """Where the actor is, from the episodes on disk (the learner owns the checkpoints)."""
        t = self.config.train
        done = collected_iterations(self.replay, 0, t.episodes_per_trial,
                                    min(t.tasks_to_collect_per_iter, len(self.env.train_tasks)))
        while self.counters.iteration in done:  # iterations are collected in order
            self.counters.iteration += 1
        self.counters.evaluations = len(self.run_dir.eval_history())
        self.counters.episodes, self.counters.env_steps = self.replay.total_episodes, self.replay.total_steps
        if self.replay.total_episodes:  # go on with fresh task draws rather than repeat the first ones
            self.rng = np.random.default_rng([t.seed, self.replay.total_episodes])
        need = t.init_collect_trials_per_task * t.episodes_per_trial
        if all(self.replay.num_episodes(task.index) >= need for task in self.env.train_tasks):
            self.counters.phase = "train" if self.run_dir.published_info() is not None else "pretrain"
            if self.counters.iteration >= t.num_iterations:
                self.counters.phase = "done"
        if self.run_dir.published_info() is not None:
            self._load_policy()
        self._owed = []
        if self.counters.iteration or self.counters.phase != "warmup":
            logger.info("actor resumes at iteration %d (%s): %d episodes on disk", self.counters.iteration,
                        self.counters.phase, self.replay.total_episodes)

    # -- phases --------------------------------------------------------------------------------
    def _pretrain(self) -> None:
        """The learner pre-trains the model: wait for its first publication."""
        self._set_phase("pretrain")
        if self._wait(lambda: self.run_dir.published_info() is not None, "the learner's pre-training"):
            self._load_policy()
            self._set_phase("train")

    def _next_iteration(self) -> int:
        """Collect the next iteration once the learner is at most `async_lead` iterations behind."""
        behind = self.counters.iteration - self.config.train.async_lead
        if not self._wait(lambda: self._published_iteration() >= behind,
                          f"the learner to train iteration {behind}"):
            return 0
        self._load_policy_if_newer()
        return self._collect()

    def _train(self, env_steps: int) -> bool:
        return not self.stop_requested  # the learner trains

    def sync_policy(self, iteration: int) -> None:
        """Wait until the learner has trained `iteration` iterations and load those weights."""
        if self._wait(lambda: self._published_iteration() >= iteration,
                      f"the learner to finish iteration {iteration}"):
            self._load_policy_if_newer()

    # -- the published policy ---------------------------------------------------------------------
    def _published_iteration(self) -> int:
        info = self.run_dir.published_info()
        if info is None or info["counters"]["phase"] not in ("train", "done"):
            return -1
        return int(info["counters"]["iteration"])

    def _load_policy_if_newer(self) -> None:
        info = self.run_dir.published_info()
        if info is not None and int(info["version"]) != self.policy_version:
            self._load_policy()

    def _load_policy(self) -> None:
        state = self.run_dir.load_published_weights()
        self.agent.load_weights(state["agent"])
        self.policy_version = int(state["version"])
        self.policy_counters = state["counters"]
        for name in ("model_steps", "ac_steps", "pretrain_steps"):
            setattr(self.counters, name, int(state["counters"][name]))
        logger.debug("actor loaded weights of learner iteration %d (version %d)",
                     state["counters"]["iteration"], self.policy_version)

    def checkpoint_state(self) -> dict[str, Any]:
        """The weights in use (those of the learner's publication) in the checkpoint format, for best.pt."""
        state = super().checkpoint_state()
        state["source"] = f"async actor, weights of learner version {self.policy_version}"
        return state

    # -- liveness -------------------------------------------------------------------------------
    def _env_step(self) -> None:
        super()._env_step()
        self.heartbeat()

    PEER = "learner"

    def _peer_exited(self) -> str | None:
        if self.learner is not None and self.learner.returncode() is not None:
            return f"the learner process exited ({self.learner.describe_exit()})"
        return None

    def _peer_progress_path(self) -> Path:
        return self.run_dir.progress_path

    def _peer_lost(self, problem: str) -> None:
        raise PeerLostError(f"{problem}; the episodes on disk are kept: resume the run (--resume) to "
                            "continue")


def _reading_replay(cfg: Any, num_tasks: int, root: Path, offline: ReplayStore | None = None) -> ReplayStore:
    """The learner's store: reads the episodes the actor writes, never touches its temporary files."""
    store = ReplayStore(cfg, num_tasks, root, offline)
    store.load_new()
    return store


def _frameless_replay(cfg: Any, num_tasks: int, root: Path,
                      offline: ReplayStore | None = None) -> ReplayStore:
    """The actor's store: writes episodes, keeps no frames in memory (it never samples)."""
    store = ReplayStore(cfg, num_tasks, root, offline, keep_frames=False)
    store.load_from_disk()
    return store


# ------------------------------------------------------------------------------------------------
# the learner as a child process, and both roles together
# ------------------------------------------------------------------------------------------------
class LearnerProcess:
    """The learner in a child process (`python -m meld_core.train.async_mode learner ...`)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    @classmethod
    def start(cls, run_dir: RunDir, plan: CpuPlan, *, device: str | None = None) -> LearnerProcess:
        cmd = [sys.executable, "-m", "meld_core.train.async_mode", "learner", "--run-dir", str(run_dir.root),
               "--parent-pid", str(os.getpid()), "--cpus", ",".join(map(str, plan.learner_cpus)),
               "--threads", str(plan.learner_threads)]
        if device is not None:
            cmd += ["--device", device]
        env = {**os.environ, **openmp_env(plan.learner_threads)}
        logger.info("starting the learner: %s", " ".join(cmd))
        return cls(subprocess.Popen(cmd, env=env))

    def returncode(self) -> int | None:
        return self.proc.poll()

    def describe_exit(self) -> str:
        rc = self.proc.poll()
        if rc is None:
            return "running"
        return f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"

    def stop(self, grace_s: float) -> int:
        """SIGTERM (the learner finishes its gradient step and checkpoints), SIGKILL after `grace_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            logger.error("the learner did not stop within %.0f s; killing it", grace_s)
            self.proc.kill()
            return self.proc.wait(timeout=30)

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None


def run_async(
    config: RunConfig,
    run_dir: str | Path,
    *,
    env_factory: Callable[[RunConfig], TaskEnv] = default_env_factory,
    agent_factory: Callable[[RunConfig, EnvSpec], Agent] = default_agent_factory,
    resume: bool = False,
    hooks: Sequence[TrainerHooks] = (),
    progress_bars: bool = True,
    trainer_callback: Callable[[Trainer], None] | None = None,
    learner_device: str | None = None,
    stop_grace_s: float = 120.0,
) -> Actor:
    """Train in async mode: the actor in this thread, the learner in a child process. Returns the actor
    when both are done (or stopped: `actor.request_stop()` stops the learner too)."""
    rd = RunDir(run_dir)
    check_run_dir(rd, config, resume)  # refuse early (each process checks again under its own lock)
    d = config.device
    plan = plan_cpus(d.actor_threads, d.num_threads, d.pin_cpus)
    affinity, threads = usable_cpus(), torch.get_num_threads()
    actor = Actor(config, rd, env_factory=env_factory, agent_factory=agent_factory, hooks=hooks,
                  progress_bars=progress_bars, cpu_plan=plan)
    if trainer_callback is not None:
        trainer_callback(actor)
    learner = LearnerProcess.start(rd, plan, device=learner_device)
    actor.learner = learner
    try:
        actor.run()
        if not actor.stop_requested:
            rc = learner.wait(stop_grace_s)
            if rc is None or rc != 0:
                raise PeerLostError(f"the learner did not finish cleanly ({learner.describe_exit()})")
    finally:
        if learner.returncode() is None:
            learner.stop(stop_grace_s)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)
    return actor


def run_learner(run_dir: str | Path, *, device: str | None = None, parent_pid: int | None = None) -> Learner:
    """The learner of the run in `run_dir` (written by its actor), until done or stopped (SIGTERM/SIGINT)."""
    rd = RunDir(run_dir)
    orphaned = lambda: parent_pid is not None and os.getppid() != parent_pid  # noqa: E731
    if not _wait_for_file(rd.config_path, 600.0, orphaned):
        raise RunDirError(f"{rd.config_path} did not appear; start the actor (`meld train --mode async`) "
                          "first")
    config = load_run_config(rd)
    if device is not None:
        config = dataclasses.replace(config, device=dataclasses.replace(config.device, device=device))
    learner = Learner(config, rd, parent_pid=parent_pid, progress_bars=False)

    def stop(signum: int, frame: Any) -> None:
        logger.info("learner: signal %d, stopping after the running gradient step", signum)
        learner.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    learner.run()
    return learner


def _wait_for_file(path: Path, timeout_s: float, give_up: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        if time.monotonic() > deadline or give_up():
            return False
        time.sleep(POLL_S)
    return True


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when its parent dies (Linux); exit now if it already has."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the learner notices os.getppid() changing while it waits
    if os.getppid() != parent_pid:
        raise SystemExit("the actor that started this learner has already exited")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meld_core.train.async_mode",
                                description="The learner of an async-mode run (see the module docstring).")
    sub = p.add_subparsers(dest="role", required=True)
    q = sub.add_parser("learner", help="train the run in --run-dir from the episodes its actor writes")
    q.add_argument("--run-dir", required=True)
    q.add_argument("--device", default=None, help="cpu, cuda or auto (default: the run's)")
    q.add_argument("--cpus", default=None, help="comma-separated cores to run on (default: all usable)")
    q.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    q.add_argument("--parent-pid", type=int, default=None, help="stop when this process (the actor) exits")
    q.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s learner %(levelname)s %(name)s: %(message)s")
    if args.parent_pid is not None:
        _die_with_parent(args.parent_pid)
    cpus = tuple(int(c) for c in args.cpus.split(",")) if args.cpus else tuple(usable_cpus())
    pin_to(cpus, args.threads or len(cpus))
    learner = run_learner(args.run_dir, device=args.device, parent_pid=args.parent_pid)
    if learner.peer_lost:
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
