"""`RemoteRobotEnv`: a TaskEnv over a robot reached through a `RobotLink` (ROS, or a fake).

    env = RemoteRobotEnv(RemoteEnvConfig(), link, train_tasks, eval_tasks, reward_fn)

The ROS agent node implements `RobotLink` with subscriptions, publishers and service clients
(`meld_ros/ros_env.py`); everything with behaviour lives here so that it is tested without ROS:

- Timing: `step()` sends the action's joint velocities at once and returns the observation taken
  at the next tick of a fixed 3.3 Hz schedule anchored at the previous observation, so the
  command rate stays at `control_hz` while the policy's compute time eats into the period rather
  than stretching it. An overrun (the policy took longer than a period) re-anchors the schedule
  and is counted.
- Freshness: at each tick the newest scene frame, wrist frame and joint state must be younger than
  their `*_max_age_s` AND newer than the ones used at the previous tick. After a short grace wait
  for a new message, a stale or missing input raises `StaleInputError` naming the input and its age:
  inputs are never silently reused.
- Images: each camera is cropped (normalised box) and resized to `image_size` square; the scene
  view is stacked on top of the wrist view (128x64x3 for 64-pixel images), as the simulation does.
- Rewards: `reward_fn(q, task)` (forward kinematics of the measured joints to the plug pose, the
  task's port pose; see `insertion_reward_fn`) gives dense, sparse and success; success may instead
  come from a link-state sensor (`use_success_topic`).
- Tasks: `set_task` moves the reset rig and waits; `reset` homes the arm and waits for fresh frames.
- The arm is stopped after the last step of an episode (the trainer then stores the episode or
  learns; the arm must not coast on its last command until the arm node's deadman trips).
- Per-frame state (`meld_core.envs.base`): `stamp` is the joint state's stamp (ROS time),
  `joint_positions` the measured positions, `commanded_velocity` the velocity sent to the arm node.
  What the link does not carry is not reported: joint velocities (`latest_joint_state` gives
  positions only) and the velocity applied after the arm node's safety filter (the filter runs in
  the arm node; its output goes to the servos, not back to this env).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from meld_core.envs.base import COMMANDED_VELOCITY, JOINT_POSITIONS, STAMP, EnvSpec, Observation, Task
from meld_core.robot.kinematics import ARM_JOINTS

log = logging.getLogger(__name__)

CAMERAS = ("scene", "wrist")


class StaleInputError(RuntimeError):
    """An input (camera frame, joint state, success signal) was missing or too old at a control tick."""

    def __init__(self, name: str, age_s: float, limit_s: float, detail: str = "") -> None:
        self.input_name = name
        self.age_s = age_s
        self.limit_s = limit_s
        what = "never received" if math.isinf(age_s) else f"{age_s:.3f} s old (limit {limit_s:.3f} s)"
        super().__init__(
            f"{name}: {what}{'; ' + detail if detail else ''}. Check that its publisher runs "
            f"(`ros2 topic hz`) and that clocks agree; the run can be resumed with --resume.")


class RobotTimeoutError(RuntimeError):
    """The arm or the reset rig did not finish a motion within its deadline."""


@runtime_checkable
class RobotLink(Protocol):
    """What RemoteRobotEnv needs from a robot. Stamps and `now()` share one clock, in seconds."""

    def now(self) -> float:
        """Current time on the clock that stamps the inputs."""

    def sleep_until(self, t: float) -> None:
        """Block until now() >= t."""

    def latest_image(self, camera: str) -> tuple[np.ndarray, float] | None:
        """Newest frame of `camera` ("scene" or "wrist") as (uint8 RGB HxWx3, stamp), or None."""

    def latest_joint_state(self) -> tuple[np.ndarray, float] | None:
        """Newest arm joint positions (rad, arm joint order) and stamp, or None."""

    def latest_success(self) -> tuple[bool, float] | None:
        """Newest external success signal and stamp, or None (only used with use_success_topic)."""

    def send_velocity(self, qdot: np.ndarray) -> None:
        """Command joint velocities (rad/s, arm joint order) until the next command."""

    def home_arm(self, timeout_s: float) -> None:
        """Bring the arm to its home pose; returns when there, raises RobotTimeoutError otherwise."""

    def stop_arm(self) -> None:
        """Command zero velocity now."""

    def move_rig(self, rotation_deg: float, translation_mm: float, timeout_s: float) -> None:
        """Move the reset rig to a pose; returns when there, raises RobotTimeoutError otherwise."""


@dataclass(frozen=True)
class RemoteEnvConfig:
    """The robot TaskEnv's timing, image and freshness parameters."""

    name: str = "widowx_insertion"  # EnvSpec name (the same family as the simulation)
    control_hz: float = 3.3  # control ticks per second
    episode_length: int = 40  # steps per episode (must match the trained model's episodes)
    image_size: int = 64  # each camera is resized to image_size x image_size
    scene_crop: tuple[float, ...] = (0.0, 0.0, 1.0, 1.0)  # scene crop box (x0, y0, x1, y1), fractions
    wrist_crop: tuple[float, ...] = (0.0, 0.0, 1.0, 1.0)  # wrist crop box (x0, y0, x1, y1), fractions
    action_scale: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5, 0.5)  # rad/s per unit action, per joint
    image_max_age_s: float = 0.25  # a frame older than this at a tick is stale
    joint_state_max_age_s: float = 0.2  # a joint state older than this at a tick is stale
    success_max_age_s: float = 1.0  # an external success signal older than this is stale
    input_grace_s: float = 0.15  # how long a tick may wait for a new message before raising
    use_success_topic: bool = False  # success (and the sparse reward) from an external sensor, not FK
    home_timeout_s: float = 30.0  # deadline for homing the arm in reset()
    rig_timeout_s: float = 30.0  # deadline for the reset rig to reach a task's pose
    rig_tolerance_deg: float = 0.2  # the rig counts as arrived when its rotation is this close, degrees
    rig_tolerance_mm: float = 0.5  # ... and its rail translation this close, millimetres

    def __post_init__(self) -> None:
        if not 0 < self.control_hz <= 50:
            raise ValueError(f"RemoteEnvConfig.control_hz must be in (0, 50], got {self.control_hz}")
        if self.episode_length < 1 or self.image_size < 8:
            raise ValueError("RemoteEnvConfig needs episode_length >= 1 and image_size >= 8")
        for name in ("scene_crop", "wrist_crop"):
            box = getattr(self, name)
            if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
                raise ValueError(f"RemoteEnvConfig.{name} must be (x0, y0, x1, y1) with 0<=x0<x1<=1, "
                                 f"0<=y0<y1<=1, got {getattr(self, name)}")
        if not self.action_scale or any(not (s > 0 and math.isfinite(s)) for s in self.action_scale):
            raise ValueError(f"RemoteEnvConfig.action_scale must be positive, got {self.action_scale}")
        for name in ("image_max_age_s", "joint_state_max_age_s", "success_max_age_s", "home_timeout_s",
                     "rig_timeout_s", "rig_tolerance_deg", "rig_tolerance_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RemoteEnvConfig.{name} must be > 0")
        if self.input_grace_s < 0:
            raise ValueError("RemoteEnvConfig.input_grace_s must be >= 0")

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_hz


RewardFn = Callable[[np.ndarray, Task], tuple[float, float, bool, dict[str, Any]]]
RigGoalFn = Callable[[Task], tuple[float, float]]


def rig_goal_from_params(task: Task) -> tuple[float, float]:
    """(rotation_deg, translation_mm) of the reset rig for a task of the WidowX insertion family."""
    try:
        return float(task.params["rotation_deg"]), float(task.params["translation_mm"])
    except KeyError as exc:
        raise ValueError(f"task {task.describe()} has no {exc} parameter for the reset rig") from exc


def crop_and_resize(image: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """Crop a normalised (x0, y0, x1, y1) box out of an RGB image and resize it to size x size."""
    import cv2

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    c0, c1 = int(round(x0 * w)), max(int(round(x1 * w)), int(round(x0 * w)) + 1)
    r0, r1 = int(round(y0 * h)), max(int(round(y1 * h)), int(round(y0 * h)) + 1)
    patch = image[r0:r1, c0:c1]
    if patch.shape[:2] == (size, size):
        return np.ascontiguousarray(patch)
    shrinking = patch.shape[0] > size or patch.shape[1] > size
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


class RemoteRobotEnv:
    """A TaskEnv over a RobotLink (see the module docstring for timing and freshness rules)."""

    def __init__(self, config: RemoteEnvConfig, link: RobotLink, train_tasks: Sequence[Task],
                 eval_tasks: Sequence[Task], reward_fn: RewardFn,
                 rig_goal_fn: RigGoalFn = rig_goal_from_params) -> None:
        self.config = config
        self.link = link
        self._train = tuple(train_tasks)
        self._eval = tuple(eval_tasks)
        self.reward_fn = reward_fn
        self.rig_goal_fn = rig_goal_fn
        self.spec = EnvSpec(name=config.name, image_shape=(2 * config.image_size, config.image_size, 3),
                            action_dim=len(config.action_scale), episode_length=config.episode_length,
                            control_hz=config.control_hz, cameras=CAMERAS,
                            joint_names=ARM_JOINTS if len(config.action_scale) == len(ARM_JOINTS) else ())
        self._scale = np.asarray(config.action_scale, dtype=np.float64)
        self.task: Task | None = None
        self._last_used: dict[str, float] = {}
        self._anchor: float | None = None
        self._steps_since_reset = 0
        self._last_scene: np.ndarray | None = None
        self.overruns = 0  # ticks where the policy took longer than a control period
        self.ticks = 0

    @property
    def train_tasks(self) -> Sequence[Task]:
        return self._train

    @property
    def eval_tasks(self) -> Sequence[Task]:
        return self._eval

    # ------------------------------------------------------------------ TaskEnv
    def set_task(self, task: Task) -> None:
        rotation_deg, translation_mm = self.rig_goal_fn(task)
        self.link.stop_arm()
        log.info("set_task %s: moving the reset rig to %.2f deg, %.2f mm", task.describe(), rotation_deg,
                 translation_mm)
        self.link.move_rig(rotation_deg, translation_mm, self.config.rig_timeout_s)
        self.task = task

    def reset(self) -> Observation:
        if self.task is None:
            raise RuntimeError("RemoteRobotEnv.reset() before set_task(); the trainer sets a task first")
        self.link.stop_arm()
        self.link.home_arm(self.config.home_timeout_s)
        homed_at = self.link.now()
        # Frames from before homing finished show the arm moving: wait for newer ones.
        self._last_used = {name: homed_at for name in (*CAMERAS, "joint_state")}
        obs = self._observe(deadline=homed_at, first=True)
        self._anchor = self.link.now()
        self._steps_since_reset = 0
        return Observation(image=obs.image, dense_reward=0.0, sparse_reward=0.0, success=False,
                           info=obs.info)

    def step(self, action: np.ndarray) -> Observation:
        if self._anchor is None:
            raise RuntimeError("RemoteRobotEnv.step() before reset()")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self._scale.shape:
            raise ValueError(f"action has shape {action.shape}, expected {self._scale.shape}")
        qdot = np.clip(np.nan_to_num(action, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0) * self._scale
        period = self.config.period_s
        now = self.link.now()
        tick = self._anchor + period
        if now > tick:
            if self._steps_since_reset > 0:
                self.overruns += 1
                log.warning("control tick overrun by %.3f s (policy slower than %.1f Hz); re-anchoring",
                            now - tick, self.config.control_hz)
            tick = now + period
        self.link.send_velocity(qdot)
        self.link.sleep_until(tick)
        obs = self._observe(deadline=tick, first=False)
        self._anchor = tick
        self._steps_since_reset += 1
        self.ticks += 1
        if self._steps_since_reset >= self.config.episode_length:
            # The episode is over: stop now rather than let the arm coast until the deadman trips
            # while the trainer stores the episode or runs its gradient steps.
            self.link.stop_arm()
        obs.info[COMMANDED_VELOCITY] = qdot.tolist()
        return obs

    def render_frame(self) -> np.ndarray:
        if self._last_scene is None:
            sample = self.link.latest_image("scene")
            if sample is None:
                return np.zeros((self.spec.image_shape[0], self.spec.image_shape[1], 3), np.uint8)
            return sample[0]
        return self._last_scene

    def close(self) -> None:
        self.link.stop_arm()

    # ------------------------------------------------------------------ inputs
    def _fresh(self, name: str, sample: tuple[Any, float] | None, max_age: float, now: float) -> bool:
        if sample is None:
            return False
        stamp = sample[1]
        return now - stamp <= max_age and stamp > self._last_used.get(name, -math.inf)

    def _wait_fresh(self, name: str, getter: Callable[[], tuple[Any, float] | None], max_age: float,
                    deadline: float, first: bool) -> tuple[Any, float]:
        # On the first frame after a reset the grace covers one camera period more than a tick's.
        grace_until = max(deadline, self.link.now()) + self.config.input_grace_s + (max_age if first else 0.0)
        while True:
            now = self.link.now()
            sample = getter()
            if self._fresh(name, sample, max_age, now):
                self._last_used[name] = sample[1]
                return sample
            if now >= grace_until:
                break
            self.link.sleep_until(min(now + 0.005, grace_until))
        if sample is None:
            raise StaleInputError(name, math.inf, max_age)
        age = now - sample[1]
        detail = "" if age > max_age else "no new message since the previous tick"
        raise StaleInputError(name, age, max_age, detail)

    def _observe(self, deadline: float, first: bool) -> Observation:
        cfg = self.config
        images = {}
        stamps = {}
        for cam in CAMERAS:
            image, stamp = self._wait_fresh(cam, lambda cam=cam: self.link.latest_image(cam),
                                            cfg.image_max_age_s, deadline, first)
            images[cam] = image
            stamps[cam] = stamp
        q, q_stamp = self._wait_fresh("joint_state", self.link.latest_joint_state, cfg.joint_state_max_age_s,
                                      deadline, first)
        self._last_scene = images["scene"]
        stacked = np.concatenate([crop_and_resize(images["scene"], cfg.scene_crop, cfg.image_size),
                                  crop_and_resize(images["wrist"], cfg.wrist_crop, cfg.image_size)], axis=0)
        dense, sparse, success, info = self.reward_fn(np.asarray(q, dtype=np.float64), self.task)
        info = dict(info)
        if cfg.use_success_topic:
            now = self.link.now()
            signal = self.link.latest_success()
            if signal is None or now - signal[1] > cfg.success_max_age_s:
                age = math.inf if signal is None else now - signal[1]
                raise StaleInputError("success", age, cfg.success_max_age_s)
            info["fk_success"] = bool(success)
            success = bool(signal[0])
            sparse = float(dense) + 1.0 if success else 0.0  # the reward module's convention
        now = self.link.now()
        info.update({
            STAMP: float(q_stamp),
            JOINT_POSITIONS: np.asarray(q, dtype=np.float64).tolist(),
            "input_age_s": {k: now - v for k, v in (*stamps.items(), ("joint_state", q_stamp))},
        })
        return Observation(image=stacked, dense_reward=float(dense), sparse_reward=float(sparse),
                           success=bool(success), info=info)
