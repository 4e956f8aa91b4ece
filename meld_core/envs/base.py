"""The `TaskEnv` protocol: what the training loop sees of a robot, simulated or real.

One training loop (`meld_core.train.trainer`) runs against any `TaskEnv`: the in-process simulations in
this package and the ROS environment in `meld_ros.ros_env`. An environment only does physics (or
talks to hardware); replay writes, logging and checkpoints hang on the trainer's hooks.

Conventions shared by every implementation:

- `Observation.image` is uint8 RGB, shape `spec.image_shape` = (H, W, 3). With two cameras the
  scene view is stacked on top of the wrist view (two 64x64 images -> 128x64), as in the paper.
- `reset()` returns the first frame of an episode with both rewards 0 and `success=False`.
- `step()` returns the frame *after* the action with the dense and sparse reward of that
  transition. Episodes end by time limit only: the trainer calls `step()` exactly
  `spec.episode_length` times per episode (no early termination, discount 1 inside an episode).
- Actions are in [-1, 1]^A; the environment scales them to physical units.

Per-frame state in `Observation.info` (recorded into every episode by `run_trial`, exported to MCAP
and LeRobot by `meld_core.data`). An environment reports what it can observe and leaves out what it
cannot; the keys are the constants below, the values plain floats or lists in `spec.joint_names` order:

- `stamp` (every frame): the time the frame was observed, in seconds on the environment's clock
  (simulated time in simulation, accumulated over the environment's life; ROS time on the robot).
- `joint_positions` (every frame): measured joint positions (rad; m for a prismatic or 2-D point robot).
- `joint_velocities` (every frame): measured joint velocities (rad/s or m/s).
- `commanded_velocity` (frames returned by `step`): the joint-velocity command the action became
  (action x scale), before any safety filter.
- `applied_velocity` (frames returned by `step`): the joint velocity actually applied during that
  step, after the safety filter (and, in simulation, the servos' velocity quantum).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Keys of the per-frame state in Observation.info (see the module docstring).
STAMP = "stamp"
JOINT_POSITIONS = "joint_positions"
JOINT_VELOCITIES = "joint_velocities"
COMMANDED_VELOCITY = "commanded_velocity"
APPLIED_VELOCITY = "applied_velocity"


@dataclass(frozen=True)
class Task:
    """One task of a family: its index within its split and its physical parameters."""

    index: int  # position in its split's task list (replay buffers are keyed by train index)
    split: str  # "train" or "eval"
    params: Mapping[str, float] = field(default_factory=dict)  # e.g. {"port": 1, "rotation_deg": 3.5}

    def __post_init__(self) -> None:
        if self.split not in ("train", "eval"):
            raise ValueError(f"Task.split must be 'train' or 'eval', got {self.split!r}")
        if self.index < 0:
            raise ValueError(f"Task.index must be >= 0, got {self.index}")

    def describe(self) -> str:
        inner = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
        )
        return f"{self.split}[{self.index}]({inner})"


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about an environment that the agent and trainer are built from."""

    name: str  # registry name, e.g. "point_nav" or "widowx_insertion"
    image_shape: tuple[int, int, int]  # (H, W, 3) of Observation.image
    action_dim: int  # A: actions live in [-1, 1]^A
    episode_length: int  # T: steps per episode (an episode stores T+1 frames)
    control_hz: float  # control rate; videos are written at this rate
    cameras: tuple[str, ...] = ("scene",)  # camera images stacked top to bottom in Observation.image
    joint_names: tuple[str, ...] = ()  # order of the joint values in the per-frame info

    def __post_init__(self) -> None:
        if len(self.image_shape) != 3 or self.image_shape[2] != 3:
            raise ValueError(f"image_shape must be (H, W, 3), got {self.image_shape}")
        if self.action_dim < 1 or self.episode_length < 1 or self.control_hz <= 0:
            raise ValueError(f"invalid EnvSpec {self}")
        if not self.cameras or self.image_shape[0] % len(self.cameras):
            raise ValueError(f"EnvSpec.cameras {self.cameras} must split the image height "
                             f"{self.image_shape[0]} into equal parts")


@dataclass
class Observation:
    """One frame: images plus the rewards of the transition that led into it."""

    image: np.ndarray  # uint8 (H, W, 3)
    dense_reward: float = 0.0  # shaped reward of the transition into this frame (0 on reset)
    sparse_reward: float = 0.0  # sparse reward of that transition (0 on reset)
    success: bool = False  # task solved at this frame
    info: dict[str, Any] = field(default_factory=dict)  # extras for logging (e.g. distances)


@runtime_checkable
class TaskEnv(Protocol):
    """A family of tasks sharing one robot; see the module docstring for the conventions."""

    spec: EnvSpec

    @property
    def train_tasks(self) -> Sequence[Task]:
        """Tasks used for meta-training (replay buffer i holds train task i)."""
        ...

    @property
    def eval_tasks(self) -> Sequence[Task]:
        """Held-out tasks used only for meta-testing."""
        ...

    def set_task(self, task: Task) -> None:
        """Switch to `task` (real robot: the reset rig moves the router). Blocks until done."""
        ...

    def reset(self) -> Observation:
        """Bring the robot to its home pose and return the first frame (rewards 0)."""
        ...

    def step(self, action: np.ndarray) -> Observation:
        """Apply `action` in [-1, 1]^A for one control period and return the next frame."""
        ...

    def render_frame(self) -> np.ndarray:
        """A uint8 RGB frame for videos (may be larger than the observation, goal may be shown)."""
        ...

    def close(self) -> None:
        """Release renderers, devices and threads; the robot is left in its safe state."""
        ...
