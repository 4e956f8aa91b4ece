"""The task families as gymnasium environments (one adapter over TaskEnv): gymnasium's env checker,
registration without MuJoCo, tasks through reset options, the time limit, rewards and rendering."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import meld_core.envs.gym as meld_gym
from meld_core.envs.base import Task

WX_SMALL = {"episode_length": 4, "image_size": 32, "num_train_tasks": 3, "num_eval_tasks": 2,
            "video_size": 64}


def test_registering_imports_neither_mujoco_nor_torch():
    code = ("import sys, gymnasium, meld_core.envs.gym; "
            "assert {'meld/PointNav-v0', 'meld/WidowXInsertion-v0'} <= set(gymnasium.registry); "
            "print(sorted(m for m in ('mujoco', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("observe_state", [False, True])
def test_point_nav_passes_the_env_checker(observe_state):
    env = gym.make("meld/PointNav-v0", config={"episode_length": 5}, observe_state=observe_state,
                   render_mode="rgb_array")
    check_env(env.unwrapped)
    assert env.unwrapped.metadata["render_fps"] == pytest.approx(3.3)
    env.close()


@pytest.mark.render
def test_widowx_insertion_passes_the_env_checker():
    env = gym.make("meld/WidowXInsertion-v0", config=WX_SMALL, observe_state=True, render_mode="rgb_array")
    check_env(env.unwrapped)
    assert env.observation_space["image"].shape == (64, 32, 3)
    assert env.observation_space["state"].shape == (10,)
    obs, info = env.reset(seed=0, options={"task": 1, "split": "eval"})
    assert info["task"] == env.unwrapped.eval_tasks[1].describe() and info["split"] == "eval"
    assert np.allclose(obs["state"][:5], info["joint_positions"])
    assert env.render().shape == (64, 128, 3)  # scene | wrist at video_size, goal marked
    env.close()


def test_an_episode_is_truncated_at_its_length_and_never_terminates():
    env = gym.make("meld/PointNav-v0", config={"episode_length": 3})
    obs, info = env.reset(seed=3)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and info["split"] == "train"
    flags = [env.step(np.zeros(2, np.float32))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(np.zeros(2, np.float32))


def test_tasks_come_from_reset_options_or_the_seeded_generator():
    env = meld_gym.TaskGymEnv("point_nav", {"num_train_tasks": 50})
    assert len(env.train_tasks) == 50 and len(env.eval_tasks) == 10
    drawn = [env.reset(seed=s)[1]["task_index"] for s in (1, 2, 1)]
    assert drawn[0] == drawn[2]
    custom = Task(0, "eval", {"goal_x": 0.0, "goal_y": 1.0})
    _, info = env.reset(options={"task": custom})
    assert info["task"] == custom.describe() and env.task_env._goal.tolist() == [0.0, 1.0]
    _, info = env.reset(options={"task": 7})
    assert info["task_index"] == 7 and env.task == env.train_tasks[7]
    for bad in ({"task": 99}, {"split": "test"}, {"goal": 1}):
        with pytest.raises(ValueError):
            env.reset(options=bad)


def test_reward_is_dense_unless_sparse_is_asked_for():
    goal_task = {"task": Task(0, "train", {"goal_x": 0.25, "goal_y": 0.0})}
    for kind in ("dense", "sparse"):
        env = meld_gym.TaskGymEnv("point_nav", reward=kind)
        env.reset(options=goal_task)
        _, reward, _, _, info = env.step(np.array([1.0, 0.0], np.float32))  # lands on the goal
        assert info["success"] and reward == info[f"{kind}_reward"]
        assert reward == (pytest.approx(0.0) if kind == "dense" else pytest.approx(1.0))
    with pytest.raises(ValueError, match="reward"):
        meld_gym.TaskGymEnv("point_nav", reward="shaped")
