"""The didactic point-robot family: rewards, tasks, images without the goal, registry."""

import math

import numpy as np
import pytest

from meld_core.envs.base import TaskEnv
from meld_core.envs.point_nav import PointNavConfig, PointNavEnv
from meld_core.envs.registry import UnknownEnvError, env_names, make_env


def test_implements_taskenv_and_spec():
    env = PointNavEnv()
    assert isinstance(env, TaskEnv)
    assert env.spec.image_shape == (64, 64, 3) and env.spec.action_dim == 2
    obs = env.reset()
    assert obs.image.dtype == np.uint8 and obs.image.shape == (64, 64, 3)
    assert obs.dense_reward == 0.0 and obs.sparse_reward == 0.0 and not obs.success


def test_goals_lie_on_the_upper_semicircle_and_splits_differ():
    env = PointNavEnv(PointNavConfig(num_train_tasks=7, num_eval_tasks=5))
    assert len(env.train_tasks) == 7 and len(env.eval_tasks) == 5
    for task in [*env.train_tasks, *env.eval_tasks]:
        x, y = task.params["goal_x"], task.params["goal_y"]
        assert math.hypot(x, y) == pytest.approx(1.0, abs=1e-5) and y >= 0
    train = {t.params["angle_deg"] for t in env.train_tasks}
    assert not train & {t.params["angle_deg"] for t in env.eval_tasks}
    again = PointNavEnv(PointNavConfig(num_train_tasks=7, num_eval_tasks=5))
    assert [t.params for t in again.train_tasks] == [t.params for t in env.train_tasks]


def test_dense_sparse_and_success_follow_the_distance():
    env = PointNavEnv(PointNavConfig(max_step=0.25, sparse_radius=0.2, success_radius=0.2))
    task = env.train_tasks[0]
    env.set_task(task)
    goal = np.array([task.params["goal_x"], task.params["goal_y"]])
    env.reset()
    obs = env.step(np.array([0.0, 0.0]))
    assert obs.dense_reward == pytest.approx(-1.0, abs=1e-6)
    assert obs.sparse_reward == 0.0 and not obs.success
    # walk straight to the goal: 4 steps of 0.25 along the unit direction
    direction = goal / np.linalg.norm(goal)
    for _ in range(4):
        obs = env.step(direction)
    assert obs.info["distance"] == pytest.approx(0.0, abs=1e-6)
    assert obs.success and obs.sparse_reward == pytest.approx(1.0, abs=1e-5)
    assert obs.dense_reward == pytest.approx(0.0, abs=1e-5)
    obs = env.step(-direction * 0.6)  # 0.15 away: still sparse reward
    assert obs.sparse_reward == pytest.approx(0.85) and obs.success
    obs = env.step(-direction)  # 0.4 away: nothing
    assert obs.sparse_reward == 0.0 and not obs.success and obs.dense_reward == pytest.approx(-0.4)


def test_the_goal_is_not_visible_but_videos_show_it():
    env = PointNavEnv()
    images, frames = [], []
    for task in env.train_tasks[:3]:
        env.set_task(task)
        images.append(env.reset().image)
        frames.append(env.render_frame())
    assert all(np.array_equal(images[0], im) for im in images[1:])
    assert not np.array_equal(frames[0], frames[1])


def test_image_shows_the_robot_moving():
    env = PointNavEnv()
    first = env.reset().image
    moved = env.step(np.array([1.0, 1.0])).image
    assert not np.array_equal(first, moved)


def robot_pixels(image: np.ndarray) -> int:
    return int(np.all(image == np.array([255, 200, 40], dtype=np.uint8), axis=-1).sum())


def test_robot_disc_size_scales_with_its_radius_and_the_image():
    small = robot_pixels(PointNavEnv(PointNavConfig(image_size=32, robot_radius_px=3.5)).reset().image)
    large = robot_pixels(PointNavEnv(PointNavConfig(image_size=32, robot_radius_px=7.0)).reset().image)
    at64 = robot_pixels(PointNavEnv(PointNavConfig(image_size=64, robot_radius_px=7.0)).reset().image)
    assert 3 * small <= large  # twice the radius: about four times the area
    assert 3 * large <= at64  # the radius is given at 64x64 and scales with the image
    assert large >= 25  # the default disc is well visible at 32x32 (the small preset's size)


def test_actions_are_clipped_and_non_finite_actions_ignored():
    env = PointNavEnv(PointNavConfig(max_step=0.25))
    env.reset()
    obs = env.step(np.array([10.0, np.nan]))
    assert obs.info["joint_positions"] == pytest.approx([0.25, 0.0])
    assert obs.info["commanded_velocity"] == pytest.approx([0.25 * 3.3, 0.0])  # the clipped command
    with pytest.raises(ValueError):
        env.step(np.zeros(3))


def test_config_validation():
    with pytest.raises(ValueError):
        PointNavConfig(image_size=8)
    with pytest.raises(ValueError):
        PointNavConfig(sparse_radius=0)
    with pytest.raises(ValueError):
        PointNavConfig(robot_radius_px=0)


def test_registry():
    assert "point_nav" in env_names()
    env = make_env("point_nav", PointNavConfig(image_size=32))
    assert env.spec.image_shape == (32, 32, 3)
    with pytest.raises(UnknownEnvError, match="point_nav"):
        make_env("no_such_env")


def test_trial_overview_draws_one_tile_per_task_with_each_episode_path(tmp_path):
    """Evaluation writes overview.png: per task the goal and each episode's path in its colour."""
    from meld_core.train.evaluation import EvalResult, trial_overview, write_eval_artefacts
    from meld_core.train.rollout import run_trial

    env = PointNavEnv(PointNavConfig(num_eval_tasks=3, video_size=96))
    rng = np.random.default_rng(0)
    trials = [run_trial(env, task, 2, rng=rng) for _ in range(2) for task in env.eval_tasks]
    assert len(trials[0].episodes[0].infos) == env.spec.episode_length + 1
    assert trials[0].episodes[0].infos[0] == {"distance": pytest.approx(1.0), "stamp": pytest.approx(0.0),
                                              "joint_positions": [0.0, 0.0], "joint_velocities": [0.0, 0.0]}
    result = EvalResult(episodes_per_trial=2, reward_input="sparse", trials=trials)
    overview = trial_overview(env, result)
    assert overview.shape == (96, 3 * 96, 3) and overview.dtype == np.uint8  # 3 tasks, first trial each
    for colour in ([80, 150, 255], [255, 90, 80]):  # both episodes' paths are drawn
        assert (overview == colour).all(-1).sum() > 20
    summary = write_eval_artefacts(result, tmp_path / "eval", fps=3.3, episode_length=env.spec.episode_length,
                                   overview=overview)
    assert summary["overview"] == "overview.png"
    assert (tmp_path / "eval" / "overview.png").stat().st_size > 1000

    class NoOverview:
        pass

    assert trial_overview(NoOverview(), result) is None
