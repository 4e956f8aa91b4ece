"""What the ROS agent node runs, without ROS: the run's config and the robot TaskEnv factory.

    cfg = AgentRunConfig(mode="train", run_dir="runs/widowx", preset="small")
    run_config = training_config(cfg)                       # preset (or the stored run on --resume)
    env = remote_env_factory(link, io_config)(run_config)   # RemoteRobotEnv with the run's tasks

The agent node calls `meld_core.train.trainer.run_training` (train mode) or
`meld_core.train.evaluation.evaluate_run` (eval mode) with `remote_env_factory(...)`: the same loop as
`meld train`, the same run directory layout, only the TaskEnv differs. The robot env takes every
fact about the task family (tasks, episode length, control rate, image size, action scaling, reward)
from the run's own environment config, so the robot and the simulation can never disagree.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meld_core.bridge import names
from meld_core.bridge.remote_env import RemoteEnvConfig, RemoteRobotEnv, RewardFn, RobotLink
from meld_core.config import TRAIN_MODES
from meld_core.train.hooks import TrainerHooks

log = logging.getLogger(__name__)

MODES = ("train", "eval")


@dataclass(frozen=True)
class AgentRunConfig:
    """What the agent node runs (its ROS parameters besides the `io.*` robot-I/O ones)."""

    mode: str = "train"  # "train" (meta-train, Algorithm 1) or "eval" (meta-test a trained run, Algorithm 2)
    run_dir: str = "runs/widowx"  # run directory (config.yaml, episodes/, checkpoints/, tb/, eval/)
    resume: bool = False  # train: continue the run in run_dir (its stored config wins)
    env: str = "widowx_insertion"  # registered task family whose config (tasks, rates, reward) the robot uses
    preset: str = "small"  # train: run preset (smoke | small | paper)
    run_config: str = ""  # train: a RunConfig YAML (e.g. a sim run's config.yaml) used instead of the preset
    stage: str = "dense"  # train: "dense" (stage 1) or "sparse" (stage 2 of the two-stage recipe)
    offline_run: str = ""  # train, stage 2: a stage-1 run directory whose episodes are mixed in ("" = none)
    iterations: int = -1  # train: number of iterations (-1 = the preset's)
    seed: int = -1  # train: seed (-1 = the preset's)
    device: str = "auto"  # torch device for the learner: auto | cpu | cuda
    train_mode: str = ""  # train: async (this node collects, a learner process trains), alternate, "" = run's
    eval_rounds: int = 3  # eval: rounds over the held-out tasks
    eval_episodes_per_trial: int = 0  # eval: episodes per trial (0 = the run's)
    eval_checkpoint: str = ""  # eval: checkpoint file, "best" (best on train-task validation), "" = newest
    eval_videos: int = 2  # eval: trials recorded as MP4 with reward-prediction plots
    robot_name: str = "wx200"  # xs_sdk namespace (/<robot_name>/joint_states)
    scene_topic: str = names.SCENE_IMAGE  # scene camera images (relative: in the agent's namespace)
    wrist_topic: str = names.WRIST_IMAGE  # wrist camera images (relative: in the agent's namespace)
    inputs_timeout_s: float = 60.0  # wait this long at start-up for images, joint states and the arm/rig
    shutdown_when_done: bool = True  # exit when training/evaluation ends (the launch then shuts down)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"AgentRunConfig.mode must be one of {MODES}, got {self.mode!r}")
        if not self.run_dir:
            raise ValueError("AgentRunConfig.run_dir must name a directory")
        if self.train_mode not in ("", *TRAIN_MODES):
            raise ValueError(f"AgentRunConfig.train_mode must be '' or one of {TRAIN_MODES}, "
                             f"got {self.train_mode!r}")
        if self.stage not in ("dense", "sparse"):
            raise ValueError(f"AgentRunConfig.stage must be 'dense' or 'sparse', got {self.stage!r}")
        if (
            self.iterations < -1
            or self.eval_rounds < 1
            or self.eval_episodes_per_trial < 0
            or self.eval_videos < 0
        ):
            raise ValueError(
                "AgentRunConfig: iterations >= -1, eval_rounds >= 1, eval_episodes_per_trial >= 0, "
                "eval_videos >= 0"
            )
        if self.inputs_timeout_s <= 0:
            raise ValueError("AgentRunConfig.inputs_timeout_s must be > 0")


def training_config(cfg: AgentRunConfig) -> Any:
    """The RunConfig to train with (`meld_core.train.setup.resolve_run_config`, as `meld train`).

    The node's env, preset and stage parameters always have values, so they describe a new run only:
    a resume continues the stored run (a run_config, offline_run or seed that would change it is
    refused; iterations may change)."""
    from meld_core.train.rundir import RunDir
    from meld_core.train.setup import resolve_run_config

    pairs = (("train.num_iterations", cfg.iterations), ("train.seed", cfg.seed))
    overrides: dict[str, Any] = {key: value for key, value in pairs if value >= 0}
    if cfg.train_mode:
        overrides["train.mode"] = cfg.train_mode
    continuing = cfg.resume and RunDir(cfg.run_dir).exists()
    described = {} if continuing or cfg.run_config else dict(env=cfg.env, preset=cfg.preset, stage=cfg.stage)
    return resolve_run_config(cfg.run_dir, resume=cfg.resume, offline_run=cfg.offline_run or None,
                              config_file=cfg.run_config or None, overrides=overrides, **described)


def family_facts(env_config: Any) -> dict[str, Any]:
    """Rates, sizes, action scaling and task lists of a task family, without building its simulator."""
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, make_tasks
    from meld_core.robot.kinematics import ARM_JOINTS

    if not isinstance(env_config, WidowXInsertionConfig):
        raise ValueError(f"the robot runs the widowx_insertion family; this run's env config is a "
                         f"{type(env_config).__name__}")
    return {
        "control_hz": float(env_config.control_hz),
        "episode_length": int(env_config.episode_length),
        "image_size": int(env_config.image_size),
        "action_scale": (float(env_config.action_scale),) * len(ARM_JOINTS),
        "train_tasks": make_tasks(env_config, "train"),
        "eval_tasks": make_tasks(env_config, "eval"),
    }


def insertion_reward_fn(env_config: Any) -> RewardFn:
    """reward(q, task): forward kinematics of the measured joints to the plug tip vs the task's port,
    on the same URDF (ports, pitch, clearance) and with the same reward config as the simulation."""
    from meld_core.robot.kinematics import WidowXKinematics
    from meld_core.robot.reward import RigGeometry, insertion_reward
    from meld_core.robot.urdf import UrdfModel, expand_xacro

    urdf = UrdfModel.from_xml(expand_xacro(num_ports=env_config.num_ports, port_pitch=env_config.port_pitch_m,
                                           port_clearance=env_config.port_clearance_m))
    kinematics = WidowXKinematics(urdf)
    rig = RigGeometry(urdf)
    reward_cfg = env_config.reward

    def reward(q, task) -> tuple[float, float, bool, dict[str, Any]]:
        return insertion_reward(kinematics.tool_pose(q), rig.port_pose(task.params), reward_cfg)

    return reward


def remote_env_config(run_config: Any, io: RemoteEnvConfig) -> tuple[RemoteEnvConfig, dict[str, Any]]:
    """`io` with the task family's facts (rates, lengths, image size, action scale) from the run."""
    facts = family_facts(run_config.build_env_config())
    return dataclasses.replace(
        io, name=run_config.env, control_hz=facts["control_hz"], episode_length=facts["episode_length"],
        image_size=facts["image_size"], action_scale=tuple(facts["action_scale"])), facts


def remote_env_factory(
    link: RobotLink, io: RemoteEnvConfig, reward_factory: Callable[[Any], RewardFn] = insertion_reward_fn
) -> Callable[[Any], RemoteRobotEnv]:
    """An `env_factory` for `run_training` / `evaluate_run` that builds the robot TaskEnv."""

    def factory(run_config: Any) -> RemoteRobotEnv:
        config, facts = remote_env_config(run_config, io)
        env_config = run_config.build_env_config()
        env = RemoteRobotEnv(
            config, link, facts["train_tasks"], facts["eval_tasks"], reward_factory(env_config)
        )
        log.info(
            "robot TaskEnv: %s, %d train / %d eval tasks, %.1f Hz, T=%d, images %s",
            config.name,
            len(env.train_tasks),
            len(env.eval_tasks),
            config.control_hz,
            config.episode_length,
            env.spec.image_shape,
        )
        return env

    return factory


class AgentProgressHook(TrainerHooks):
    """What the agent node tells its user while it trains: a console line per warm-up episode (with
    the time left; the `small` preset's warm-up takes minutes at 3.3 Hz), per phase, iteration,
    evaluation and checkpoint, and the trainer's progress published at once on every episode.

    `say(line)` logs a line (the node's logger), `publish()` publishes `trainer.progress()` now."""

    def __init__(self, say: Callable[[str], None], publish: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.say = say
        self.publish = publish
        self._clock = clock
        self._warmup_start: tuple[float, int] | None = None  # (time, episodes) of this process's first

    def on_phase(self, trainer: Any, phase: str) -> None:
        if phase == "warmup":
            done, total = trainer.warmup_episodes()
            self._warmup_start = (self._clock(), done)
            self.say(f"trainer phase: warmup ({done}/{total} random-policy episodes on disk)")
        else:
            self.say(f"trainer phase: {phase}")
        self.publish()

    def on_episode(self, trainer: Any, episode: Any) -> None:
        if trainer.counters.phase == "warmup" and self._warmup_start is not None:
            done, total = trainer.warmup_episodes()
            started, done_before = self._warmup_start
            left = ""
            if done > done_before and done < total:
                per_episode = (self._clock() - started) / (done - done_before)
                left = f", about {per_episode * (total - done) / 60.0:.1f} min left"
            self.say(f"warm-up: episode {done}/{total} (random policy){left}")
        self.publish()

    def on_iteration(self, trainer: Any) -> None:
        c = trainer.counters
        self.say(f"training iteration {c.iteration} complete ({c.episodes} episodes, {c.env_steps} env "
                 f"steps, {c.model_steps} model steps, {c.ac_steps} AC steps)")
        self.publish()

    def on_eval(self, trainer: Any, result: Any) -> None:
        self.say(f"evaluation: success per episode position {result.success_per_position}")

    def on_checkpoint(self, trainer: Any, path: Any) -> None:
        self.say(f"checkpoint written: {path}")
