"""The task families as gymnasium environments: one adapter over any `TaskEnv`.

    import gymnasium as gym
    import meld_core.envs.gym  # registers meld/PointNav-v0 and meld/WidowXInsertion-v0

    env = gym.make("meld/PointNav-v0")
    obs, info = env.reset(seed=0, options={"task": 3, "split": "eval"})
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    env.unwrapped.train_tasks, env.unwrapped.eval_tasks      # the task sets, for meta-RL

Registering imports only gymnasium and the env registry: MuJoCo is imported when a WidowX env is
made. `gym.make` passes keyword arguments on: `config` (the family's config dataclass, or a dict of
overrides such as `{"image_size": 32}`), `reward` ("dense", the shaped reward, or "sparse"),
`observe_state` (observations become a Dict of the image and the measured joint positions and
velocities), `render_mode` ("rgb_array": `render()` returns the env's video frame, goal marked).

Semantics: `reset(options={"task": ...})` sets the task (a `Task`, or an index into the split's
list; `"split"`: "train" or "eval", default "train") and starts an episode; without a task it draws
one from the split with the env's seeded generator. Episodes end by time limit only, as in MELD:
`terminated` is always False and `truncated` becomes True after `episode_length` steps. For a meta-RL
trial, reset with the same task for each of its episodes. `info` carries the env's per-frame info
(`joint_positions`, ...; not the env clock's `stamp`, which runs across episodes and would make
seeded episodes differ) plus `success`, both rewards and the task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from meld_core.envs.base import JOINT_POSITIONS, JOINT_VELOCITIES, STAMP, Observation, Task, TaskEnv

# gymnasium id -> registry name of the task family.
GYM_IDS = {"meld/PointNav-v0": "point_nav", "meld/WidowXInsertion-v0": "widowx_insertion"}
REWARDS = ("dense", "sparse")


class TaskGymEnv(gymnasium.Env):
    """A `TaskEnv` as a `gymnasium.Env` (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 3.3}

    def __init__(self, env: str | TaskEnv = "point_nav", config: Any = None, *, reward: str = "dense",
                 observe_state: bool = False, render_mode: str | None = None, seed: int = 0) -> None:
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task_env: TaskEnv = _make_task_env(env, config, seed) if isinstance(env, str) else env
        spec = self.task_env.spec
        self.reward_kind = reward
        self.observe_state = observe_state
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": spec.control_hz}
        image = spaces.Box(0, 255, shape=spec.image_shape, dtype=np.uint8)
        if observe_state:
            if not spec.joint_names:
                raise ValueError(f"{spec.name} names no joints (EnvSpec.joint_names): no state to observe")
            n = 2 * len(spec.joint_names)
            self.observation_space = spaces.Dict(
                {"image": image, "state": spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32)})
        else:
            self.observation_space = image
        self.action_space = spaces.Box(-1.0, 1.0, shape=(spec.action_dim,), dtype=np.float32)
        self.task: Task | None = None
        self._steps: int | None = None  # steps taken in the running episode (None: reset first)

    # -- the task sets ---------------------------------------------------------------------------
    @property
    def train_tasks(self) -> Sequence[Task]:
        return self.task_env.train_tasks

    @property
    def eval_tasks(self) -> Sequence[Task]:
        return self.task_env.eval_tasks

    def _choose_task(self, options: Mapping[str, Any] | None) -> Task:
        options = dict(options or {})
        unknown = set(options) - {"task", "split"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; use 'task' and 'split'")
        split = options.get("split", "train")
        if split not in ("train", "eval"):
            raise ValueError(f"options['split'] must be 'train' or 'eval', got {split!r}")
        tasks = self.train_tasks if split == "train" else self.eval_tasks
        task = options.get("task")
        if isinstance(task, Task):
            return task
        if task is None:
            return tasks[int(self.np_random.integers(len(tasks)))]
        index = int(task)
        if not 0 <= index < len(tasks):
            raise ValueError(f"task index {index} outside the {len(tasks)} {split} tasks")
        return tasks[index]

    # -- gymnasium ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.task = self._choose_task(options)
        self.task_env.set_task(self.task)
        obs = self.task_env.reset()
        self._steps = 0
        return self._observation(obs), self._info(obs)

    def step(self, action: np.ndarray):
        if self._steps is None:
            raise RuntimeError("call reset() before step()")
        if self._steps >= self.task_env.spec.episode_length:
            raise RuntimeError(f"the episode ended after {self._steps} steps; call reset()")
        obs = self.task_env.step(np.asarray(action, dtype=np.float32))
        self._steps += 1
        reward = obs.dense_reward if self.reward_kind == "dense" else obs.sparse_reward
        truncated = self._steps >= self.task_env.spec.episode_length
        return self._observation(obs), float(reward), False, truncated, self._info(obs)

    def render(self) -> np.ndarray | None:
        return None if self.render_mode is None else self.task_env.render_frame()

    def close(self) -> None:
        self.task_env.close()

    # -- internals ---------------------------------------------------------------------------------
    def _observation(self, obs: Observation) -> np.ndarray | dict[str, np.ndarray]:
        if not self.observe_state:
            return obs.image
        missing = [k for k in (JOINT_POSITIONS, JOINT_VELOCITIES) if k not in obs.info]
        if missing:
            raise RuntimeError(f"{self.task_env.spec.name} did not report {missing}: no state to observe")
        state = np.concatenate([obs.info[JOINT_POSITIONS], obs.info[JOINT_VELOCITIES]]).astype(np.float32)
        return {"image": obs.image, "state": state}

    def _info(self, obs: Observation) -> dict[str, Any]:
        assert self.task is not None
        info = {k: v for k, v in obs.info.items() if k != STAMP}  # the env clock runs across episodes
        return {**info, "success": bool(obs.success), "dense_reward": float(obs.dense_reward),
                "sparse_reward": float(obs.sparse_reward), "task": self.task.describe(),
                "task_index": self.task.index, "split": self.task.split}


def _make_task_env(name: str, config: Any, seed: int) -> TaskEnv:
    from meld_core.envs.registry import env_config_class, make_env

    if isinstance(config, Mapping):
        config = dataclasses.replace(env_config_class(name)(), **config)
    return make_env(name, config, seed=seed)


def register() -> None:
    """Register every family under its `GYM_IDS` id (idempotent)."""
    for gym_id, name in GYM_IDS.items():
        if gym_id not in gymnasium.registry:
            gymnasium.register(id=gym_id, entry_point=f"{__name__}:TaskGymEnv", kwargs={"env": name})


register()
