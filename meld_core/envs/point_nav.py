"""A didactic task family: a 2-D point robot whose goal lies somewhere on a semicircle.

    meld train --env point_nav --preset smoke --run-dir runs/point_smoke

After the sparse point robot of the MELD paper's appendix D (itself after PEARL): the robot starts
at the origin, every goal lies on the upper half of a circle of radius `goal_radius`, the dense
reward is the negative distance to the goal and the sparse reward is non-zero only within
`sparse_radius` of it. The observation is a small image drawn with numpy in which the goal is NOT
visible: the agent can only learn where the goal is from the rewards it sees, which is exactly
what MELD's posterior is for. Videos (`render_frame`) do show the goal and the path so far.

Cheap enough (well under a millisecond per step) for CPU learning runs and tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from meld_core.envs.base import (
    APPLIED_VELOCITY,
    COMMANDED_VELOCITY,
    JOINT_POSITIONS,
    JOINT_VELOCITIES,
    STAMP,
    EnvSpec,
    Observation,
    Task,
)

# Colours (RGB, uint8) of the agent's image and of the video frames.
_BACKGROUND = np.array([24, 24, 32], dtype=np.uint8)
_ARC = np.array([70, 70, 90], dtype=np.uint8)
_ROBOT = np.array([255, 200, 40], dtype=np.uint8)
_GOAL = np.array([60, 220, 90], dtype=np.uint8)
_TRAIL = np.array([150, 120, 40], dtype=np.uint8)
# Paths in the evaluation overview: first episode, second episode, any later one.
_PATH_COLOURS = (np.array([80, 150, 255], dtype=np.uint8), np.array([255, 90, 80], dtype=np.uint8),
                 np.array([170, 170, 170], dtype=np.uint8))


@dataclass(frozen=True)
class PointNavConfig:
    """The point-robot task family (appendix D of the MELD paper)."""

    image_size: int = 64  # observation images are image_size x image_size x 3
    episode_length: int = 20  # T: control steps per episode
    num_train_tasks: int = 20  # goals used for meta-training
    num_eval_tasks: int = 10  # held-out goals used only for meta-testing
    goal_radius: float = 1.0  # every goal lies on the upper semicircle of this radius around the start
    sparse_radius: float = 0.2  # sparse reward (1 - distance) only closer than this to the goal
    success_radius: float = 0.2  # success: the robot ends a step closer than this to the goal
    max_step: float = 0.25  # distance moved per step for an action of norm 1 (per axis, clipped)
    world_half_width: float = 1.25  # the image shows [-w, w] x [-w + 0.5, w + 0.5] (semicircle centred)
    show_arc: bool = True  # draw the semicircle of possible goals (the goal itself is never drawn)
    # Radius of the robot's disc in a 64x64 image (scaled with image_size). A large disc is learned
    # far sooner: at 32x32, a linear probe read the position from the belief with R^2 0.90 after 250
    # model steps with 7 px, against 0.0-0.3 with 3.5 px.
    robot_radius_px: float = 7.0
    task_seed: int = 0  # goal angles are drawn from this seed (train) and task_seed + 1 (held-out)
    video_size: int = 192  # render_frame() size in pixels (goal and path visible)
    control_hz: float = 3.3  # nominal control rate; only used for video frame rates

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"PointNavConfig.image_size must be >= 16, got {self.image_size}")
        if self.episode_length < 1:
            raise ValueError(f"PointNavConfig.episode_length must be >= 1, got {self.episode_length}")
        if self.num_train_tasks < 1 or self.num_eval_tasks < 1:
            raise ValueError("PointNavConfig needs at least one train and one eval task")
        for name in ("goal_radius", "sparse_radius", "success_radius", "max_step", "world_half_width",
                     "control_hz", "robot_radius_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PointNavConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.world_half_width < self.goal_radius:
            raise ValueError("PointNavConfig.world_half_width must be >= goal_radius (goals must be in view)")
        if self.video_size < 32:
            raise ValueError(f"PointNavConfig.video_size must be >= 32, got {self.video_size}")


def _goal_angles(count: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).uniform(0.0, math.pi, size=count))


class PointNavEnv:
    """2-D point robot, goals on a semicircle; implements `meld_core.envs.base.TaskEnv`."""

    def __init__(self, config: PointNavConfig | None = None, seed: int = 0) -> None:
        self.config = config or PointNavConfig()
        c = self.config
        self.spec = EnvSpec(
            name="point_nav",
            image_shape=(c.image_size, c.image_size, 3),
            action_dim=2,
            episode_length=c.episode_length,
            control_hz=c.control_hz,
            cameras=("scene",),
            joint_names=("x", "y"),  # the robot's position is its joint state
        )
        self._seed = seed  # the env itself is deterministic; kept for the TaskEnv constructor signature
        self._train = tuple(self._make_tasks("train", _goal_angles(c.num_train_tasks, c.task_seed)))
        self._eval = tuple(self._make_tasks("eval", _goal_angles(c.num_eval_tasks, c.task_seed + 1)))
        self._task: Task = self._train[0]
        self._goal = self._goal_of(self._task)
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)  # velocity over the last step (m/s); 0 after a reset
        self._time = 0.0  # simulated seconds since the environment was made (stamps)
        self._trail: list[np.ndarray] = []
        self._arc_mask_obs = self._arc_mask(c.image_size)
        self._arc_mask_video = self._arc_mask(c.video_size)

    # -- tasks ---------------------------------------------------------------------------------
    def _make_tasks(self, split: str, angles: np.ndarray) -> list[Task]:
        r = self.config.goal_radius
        return [
            Task(index=i, split=split, params={
                "angle_deg": round(math.degrees(a), 4),
                "goal_x": round(r * math.cos(a), 6),
                "goal_y": round(r * math.sin(a), 6),
            })
            for i, a in enumerate(angles)
        ]

    @staticmethod
    def _goal_of(task: Task) -> np.ndarray:
        return np.array([float(task.params["goal_x"]), float(task.params["goal_y"])])

    @property
    def train_tasks(self) -> Sequence[Task]:
        return self._train

    @property
    def eval_tasks(self) -> Sequence[Task]:
        return self._eval

    def set_task(self, task: Task) -> None:
        if "goal_x" not in task.params or "goal_y" not in task.params:
            raise ValueError(f"point_nav task needs goal_x and goal_y, got {task.describe()}")
        self._task = task
        self._goal = self._goal_of(task)

    # -- dynamics ------------------------------------------------------------------------------
    def reset(self) -> Observation:
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)
        self._trail = [self._pos.copy()]
        return Observation(image=self._draw(self.config.image_size), info=self._info())

    def step(self, action: np.ndarray) -> Observation:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"point_nav expects an action of shape (2,), got {np.shape(action)}")
        a = np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        c, w = self.config, self.config.world_half_width
        before = self._pos
        self._pos = self._pos + c.max_step * a
        self._pos[0] = np.clip(self._pos[0], -w, w)
        self._pos[1] = np.clip(self._pos[1], -w + 0.5, w + 0.5)
        self._vel = (self._pos - before) * c.control_hz  # the walls stop what the command asked for
        self._time += 1.0 / c.control_hz
        self._trail.append(self._pos.copy())
        dense, sparse, success = self._rewards()
        info = self._info()
        info[COMMANDED_VELOCITY] = (a * c.max_step * c.control_hz).tolist()
        info[APPLIED_VELOCITY] = self._vel.tolist()
        return Observation(image=self._draw(c.image_size), dense_reward=dense,
                           sparse_reward=sparse, success=success, info=info)

    def _rewards(self) -> tuple[float, float, bool]:
        d = float(np.linalg.norm(self._pos - self._goal))
        sparse = 1.0 - d if d < self.config.sparse_radius else 0.0
        return -d, sparse, d < self.config.success_radius

    def _info(self) -> dict[str, Any]:
        return {"distance": float(np.linalg.norm(self._pos - self._goal)), STAMP: self._time,
                JOINT_POSITIONS: self._pos.tolist(), JOINT_VELOCITIES: self._vel.tolist()}

    # -- drawing -------------------------------------------------------------------------------
    def _to_pixels(self, xy: np.ndarray, size: int) -> tuple[float, float]:
        """World (x, y) -> (column, row) in a size x size image; y points up."""
        w = self.config.world_half_width
        col = (xy[0] + w) / (2 * w) * (size - 1)
        row = (w + 0.5 - xy[1]) / (2 * w) * (size - 1)
        return col, row

    def _arc_mask(self, size: int) -> np.ndarray:
        if not self.config.show_arc:
            return np.zeros((size, size), dtype=bool)
        rows, cols = np.mgrid[0:size, 0:size]
        w = self.config.world_half_width
        x = cols / (size - 1) * 2 * w - w
        y = w + 0.5 - rows / (size - 1) * 2 * w
        ring = np.abs(np.hypot(x, y) - self.config.goal_radius) < 0.6 * (2 * w / size)
        return ring & (y >= 0)

    @staticmethod
    def _disc(size: int, centre: tuple[float, float], radius_px: float) -> np.ndarray:
        rows, cols = np.mgrid[0:size, 0:size]
        return (cols - centre[0]) ** 2 + (rows - centre[1]) ** 2 <= radius_px ** 2

    def _draw(self, size: int, *, video: bool = False) -> np.ndarray:
        img = np.empty((size, size, 3), dtype=np.uint8)
        img[:] = _BACKGROUND
        img[self._arc_mask_video if video else self._arc_mask_obs] = _ARC
        scale = size / 64.0
        if video:
            for p in self._trail[:-1]:
                img[self._disc(size, self._to_pixels(p, size), 1.2 * scale)] = _TRAIL
            self._draw_goal(img, self._goal)
        img[self._disc(size, self._to_pixels(self._pos, size), self.config.robot_radius_px * scale)] = _ROBOT
        return img

    def _draw_goal(self, img: np.ndarray, goal: np.ndarray) -> None:
        """The goal (a dot) and its success circle, drawn into a square video-style image."""
        size = img.shape[0]
        goal_px = self._to_pixels(goal, size)
        r_px = self.config.success_radius / (2 * self.config.world_half_width) * (size - 1)
        rows, cols = np.mgrid[0:size, 0:size]
        img[np.abs(np.hypot(cols - goal_px[0], rows - goal_px[1]) - r_px) < 1.0] = _GOAL
        img[self._disc(size, goal_px, 1.5 * size / 64.0)] = _GOAL

    def render_frame(self) -> np.ndarray:
        return self._draw(self.config.video_size, video=True)

    # -- evaluation overview -------------------------------------------------------------------
    def trial_overview(self, trials: Sequence[Any], columns: int = 5) -> np.ndarray:
        """One RGB picture of evaluated trials: a tile per task (its first trial) with the goal, its
        success circle and the path of every episode (first blue, second red, later ones grey);
        the caption gives the goal angle and, per episode, S (success at the last frame), r
        (reached earlier) or - (missed). Paths come from the recorded positions (`joint_positions`)."""
        from meld_core.train.media import annotate

        size = self.config.video_size
        first: dict[tuple[str, int], Any] = {}
        for trial in trials:
            first.setdefault((trial.task.split, trial.task.index), trial)
        chosen = list(first.values())
        rows = max(1, math.ceil(len(chosen) / columns))
        cols = min(columns, max(1, len(chosen)))
        canvas = np.zeros((rows * size, cols * size, 3), dtype=np.uint8)
        for k, trial in enumerate(chosen):
            tile = np.empty((size, size, 3), dtype=np.uint8)
            tile[:] = _BACKGROUND
            tile[self._arc_mask_video] = _ARC
            self._draw_goal(tile, self._goal_of(trial.task))
            marks = []
            for ep in trial.episodes:
                colour = _PATH_COLOURS[min(ep.position_in_trial, len(_PATH_COLOURS) - 1)]
                points = [] if ep.episode.joint_positions is None else list(ep.episode.joint_positions)
                line_px, dot_px = 0.8 * size / 64.0, 1.6 * size / 64.0
                for a, b in zip(points[:-1], points[1:]):
                    for f in np.linspace(0.0, 1.0, 8):
                        tile[self._disc(size, self._to_pixels(a + f * (b - a), size), line_px)] = colour
                for p in points[1:]:
                    tile[self._disc(size, self._to_pixels(p, size), dot_px)] = colour
                marks.append("S" if ep.success else ("r" if ep.reached else "-"))
            caption = f"{trial.task.params.get('angle_deg', trial.task.index):.0f} deg  {' '.join(marks)}"
            r, c = divmod(k, cols)
            canvas[r * size:(r + 1) * size, c * size:(c + 1) * size] = annotate(tile, caption)
        return canvas

    def close(self) -> None:
        """Nothing to release: the environment holds no devices or threads."""
