"""Running one trial: E episodes on one task with the belief carried across the episode resets.

Used by meta-training (collection, Algorithm 1) and by meta-testing (Algorithm 2), so both see
exactly the same frame layout as the replay and the model (the reference's trial layout): every episode
stores T+1 frames, the policy is called on every frame including the last one of each episode
(whose "boundary" action is stored but not executed), and the belief is reset only at the start of
the trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meld_core.algo.agent import Agent
from meld_core.algo.replay import Episode
from meld_core.envs.base import (
    APPLIED_VELOCITY,
    COMMANDED_VELOCITY,
    JOINT_POSITIONS,
    JOINT_VELOCITIES,
    STAMP,
    EnvSpec,
    Observation,
    Task,
    TaskEnv,
)


@dataclass
class RolloutEpisode:
    """An episode as it was run: the record the replay stores (`episode`: frames, actions, rewards,
    successes, joint states, commands, stamps, task, position in the trial) plus what only the live
    run has (the env's info per frame, the reward decoder's predictions, rendered video frames)."""

    episode: Episode  # the stored record (T+1 frames; frame 0 is the reset frame)
    infos: list[dict[str, Any]] = field(default_factory=list)  # env info of every frame (overview plots)
    pred_mean: np.ndarray | None = None  # reward decoder mean per frame (None for random actions)
    pred_std: np.ndarray | None = None  # reward decoder std per frame
    video: list[np.ndarray] | None = None  # render_frame() per frame when recording

    @property
    def position_in_trial(self) -> int:
        return int(self.episode.meta["position_in_trial"])

    @property
    def successes(self) -> np.ndarray:
        return self.episode.successes

    @property
    def success(self) -> bool:
        """An episode succeeds when the task is solved at its last frame."""
        return bool(self.episode.successes[-1])

    @property
    def reached(self) -> bool:
        """The task was solved at some frame of the episode (not necessarily the last)."""
        return bool(self.episode.successes.any())

    @property
    def dense_return(self) -> float:
        return float(self.episode.dense_rewards.sum())

    @property
    def sparse_return(self) -> float:
        return float(self.episode.sparse_rewards.sum())


@dataclass
class TrialRollout:
    task: Task
    episodes: list[RolloutEpisode]  # fewer than E when a stop was requested mid-trial


def posterior_reward(obs: Observation, reward_input: str) -> float:
    """The reward the posterior sees for the transition into `obs`."""
    if reward_input == "dense":
        return float(obs.dense_reward)
    if reward_input == "sparse":
        return float(obs.sparse_reward)
    return 0.0


def frame_records(infos: list[dict[str, Any]]) -> dict[str, np.ndarray | None]:
    """The per-frame arrays of an `Episode` from the env's info of each of its T+1 frames.

    State reported on every frame (stamp, joint positions and velocities) is copied as it is; the
    commands reported by the T `step` frames move back one frame, to the frame whose action they
    executed, and the last frame gets zeros (nothing runs after it). What is missing on any frame
    that should report it is None: a partial record is not a record.
    """
    def every(key: str, frames: list[dict[str, Any]], dtype: type) -> np.ndarray | None:
        if not frames or not all(key in info for info in frames):
            return None
        return np.asarray([info[key] for info in frames], dtype=dtype)

    out = {"stamps": every(STAMP, infos, np.float64),
           "joint_positions": every(JOINT_POSITIONS, infos, np.float32),
           "joint_velocities": every(JOINT_VELOCITIES, infos, np.float32)}
    for key, name in ((COMMANDED_VELOCITY, "commanded_velocities"), (APPLIED_VELOCITY, "applied_velocities")):
        steps = every(key, infos[1:], np.float32)
        out[name] = None if steps is None else np.concatenate([steps, np.zeros_like(steps[:1])])
    return out


def episode_meta(spec: EnvSpec, task: Task, position: int, agent: Agent | None,
                 deterministic: bool) -> dict[str, Any]:
    """What an episode record says about itself: its task and place in the trial, how its frames are
    laid out (cameras, joints, rate) and which policy acted (the trainer adds the run and counters)."""
    return {"position_in_trial": position, "task": dict(task.params), "split": task.split, "env": spec.name,
            "cameras": list(spec.cameras), "joint_names": list(spec.joint_names),
            "control_hz": float(spec.control_hz),
            "policy": {"kind": "random"} if agent is None else {"kind": "agent",
                                                                "deterministic": bool(deterministic)}}


def run_trial(
    env: TaskEnv,
    task: Task,
    episodes_per_trial: int,
    *,
    agent: Agent | None = None,
    reward_input: str = "dense",
    deterministic: bool = False,
    rng: np.random.Generator | None = None,
    record_video: bool = False,
    record_prediction: bool = False,
    on_episode: Callable[[RolloutEpisode], None] | None = None,
    on_step: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrialRollout:
    """Run one trial of `episodes_per_trial` episodes on `task`.

    `agent=None` acts uniformly at random in [-1, 1]^A with `rng` (the warm-up policy). Otherwise
    `agent.reset_belief()` is called once and `agent.act(...)` on every frame. `on_episode` is called
    as each episode ends (the trainer stores it there, so a crash loses at most the running
    episode); `should_stop()` is checked between episodes.
    """
    if agent is None and rng is None:
        raise ValueError("run_trial: a random policy needs an rng")
    spec = env.spec
    T, A = spec.episode_length, spec.action_dim
    env.set_task(task)
    if agent is not None:
        agent.reset_belief()
    trial = TrialRollout(task=task, episodes=[])
    for position in range(episodes_per_trial):
        if position > 0 and should_stop is not None and should_stop():
            break
        images = np.empty((T + 1, *spec.image_shape), dtype=np.uint8)
        actions = np.zeros((T + 1, A), dtype=np.float32)
        dense = np.zeros(T + 1, dtype=np.float32)
        sparse = np.zeros(T + 1, dtype=np.float32)
        success = np.zeros(T + 1, dtype=bool)
        pred_mean = np.zeros(T + 1, dtype=np.float32) if record_prediction else None
        pred_std = np.zeros(T + 1, dtype=np.float32) if record_prediction else None
        video: list[np.ndarray] | None = [] if record_video else None
        infos: list[dict[str, Any]] = []
        obs = env.reset()
        for t in range(T + 1):
            if obs.image.shape != spec.image_shape:
                raise ValueError(f"{spec.name} returned an image of shape {obs.image.shape}, "
                                 f"its spec says {spec.image_shape}")
            images[t] = obs.image
            dense[t] = 0.0 if t == 0 else obs.dense_reward
            sparse[t] = 0.0 if t == 0 else obs.sparse_reward
            success[t] = bool(obs.success) and t > 0
            infos.append(dict(obs.info))
            if video is not None:
                video.append(env.render_frame())
            if agent is None:
                action = rng.uniform(-1.0, 1.0, size=A).astype(np.float32)
            else:
                r = 0.0 if t == 0 else posterior_reward(obs, reward_input)
                action = np.asarray(agent.act(obs.image, r, episode_start=(t == 0),
                                              deterministic=deterministic), dtype=np.float32)
                if record_prediction:
                    pred_mean[t], pred_std[t] = agent.predicted_reward()
            actions[t] = action
            if t < T:
                obs = env.step(action)
                if on_step is not None:
                    on_step()
        record = Episode(images=images, actions=actions, dense_rewards=dense, sparse_rewards=sparse,
                         successes=success, task_index=task.index,
                         meta=episode_meta(spec, task, position, agent, deterministic),
                         **frame_records(infos))
        episode = RolloutEpisode(record, infos=infos, pred_mean=pred_mean, pred_std=pred_std, video=video)
        trial.episodes.append(episode)
        if on_episode is not None:
            on_episode(episode)
    return trial
