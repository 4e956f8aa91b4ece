"""RemoteRobotEnv (the agent node's TaskEnv) over a fake RobotLink on a virtual clock."""

import numpy as np
import pytest

from meld_core.bridge.remote_env import (
    RemoteEnvConfig,
    RemoteRobotEnv,
    RobotLink,
    RobotTimeoutError,
    StaleInputError,
    crop_and_resize,
)
from meld_core.envs.base import Task, TaskEnv
from meld_core.testing.fake_robot_link import FakeRobotLink

TRAIN = [
    Task(i, "train", {"port": i % 2, "rotation_deg": float(i), "translation_mm": -float(i)}) for i in range(3)
]
EVAL = [Task(0, "eval", {"port": 1, "rotation_deg": 2.5, "translation_mm": 1.0})]


def reward_from_q(q, task):
    """Dense = -|q - target| with target = rotation_deg/10 on the waist: enough to see q flow through."""
    target = task.params["rotation_deg"] / 10.0
    dense = -abs(float(q[0]) - target)
    success = abs(float(q[0]) - target) < 0.01
    return dense, (dense + 1.0 if success else 0.0), success, {"target": target}


def make_env(link=None, **overrides):
    link = link or FakeRobotLink()
    cfg = RemoteEnvConfig(**{"episode_length": 5, **overrides})
    return RemoteRobotEnv(cfg, link, TRAIN, EVAL, reward_from_q), link


def test_protocols_are_implemented():
    env, link = make_env()
    assert isinstance(env, TaskEnv)
    assert isinstance(link, RobotLink)
    assert env.spec.image_shape == (128, 64, 3)
    assert env.spec.action_dim == 5 and env.spec.control_hz == pytest.approx(3.3)


def test_set_task_moves_rig_and_reset_homes_arm():
    env, link = make_env()
    env.set_task(TRAIN[2])
    assert link.rig_moves == [(2.0, -2.0)]
    link.q[:] = 0.7
    obs = env.reset()
    assert link.homes == 1 and np.allclose(link.q, 0.0)
    assert obs.image.shape == (128, 64, 3) and obs.image.dtype == np.uint8
    assert obs.dense_reward == 0.0 and obs.sparse_reward == 0.0 and not obs.success
    # scene on top (red channel set), wrist below (blue channel set)
    assert obs.image[:64, :, 0].mean() > 150 and obs.image[64:, :, 2].mean() > 150


def test_reset_before_set_task_raises():
    env, _ = make_env()
    with pytest.raises(RuntimeError, match="set_task"):
        env.reset()


def test_steps_tick_at_the_control_rate_even_with_policy_compute_time():
    env, link = make_env()
    env.set_task(TRAIN[0])
    env.reset()
    anchor = link.now()
    ticks = []
    for _ in range(5):
        link.policy_delay(0.05)  # the policy's forward pass eats into the period, not on top of it
        env.step(np.zeros(5))
        ticks.append(link.now())
    periods = np.diff([anchor, *ticks])
    # after each tick the env waits for frames newer than the previous ones: at most one camera period late
    assert np.all(np.abs(periods - 1 / 3.3) < 1 / 30 + 1e-6), periods
    sends = [t for t, _ in link.commands]
    assert np.allclose(np.diff(sends), 1 / 3.3, atol=1 / 30 + 1e-6)
    assert env.overruns == 0


def test_overrun_is_counted_and_the_schedule_re_anchors():
    env, link = make_env()
    env.set_task(TRAIN[0])
    env.reset()
    env.step(np.zeros(5))
    link.policy_delay(0.5)  # longer than a period
    env.step(np.zeros(5))
    assert env.overruns == 1


def test_actions_are_clipped_scaled_and_nan_safe():
    env, link = make_env(action_scale=(0.5, 1.0, 1.0, 1.0, 1.0))
    env.set_task(TRAIN[0])
    env.reset()
    env.step(np.array([2.0, -3.0, np.nan, 0.5, np.inf]))
    _, qdot = link.commands[-1]
    assert np.allclose(qdot, [0.5, -1.0, 0.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))


def test_rewards_come_from_the_measured_joints():
    env, link = make_env(action_scale=(1.0,) * 5)
    env.set_task(TRAIN[1])  # target waist 0.1 rad
    env.reset()
    obs = env.step(np.array([0.33, 0, 0, 0, 0]))  # ~0.1 rad after one 0.303 s period
    assert obs.info["joint_positions"][0] == pytest.approx(0.1, abs=0.02)
    assert obs.dense_reward == pytest.approx(
        reward_from_q(np.array(obs.info["joint_positions"]), TRAIN[1])[0]
    )


def test_frames_report_the_joint_state_its_stamp_and_the_command_sent():
    """The per-frame state of the TaskEnv convention: what the link carries, nothing it does not."""
    env, link = make_env(action_scale=(0.5,) * 5)
    assert env.spec.joint_names == ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")
    assert env.spec.cameras == ("scene", "wrist")
    env.set_task(TRAIN[0])
    first = env.reset()
    obs = env.step(np.array([0.4, 0, 0, 0, -2.0]))
    q, stamp = link.latest_joint_state()
    assert obs.info["stamp"] == stamp and obs.info["stamp"] > first.info["stamp"]
    assert obs.info["joint_positions"] == pytest.approx(q.tolist())
    assert obs.info["commanded_velocity"] == pytest.approx([0.2, 0, 0, 0, -0.5])
    assert "commanded_velocity" not in first.info  # nothing was commanded into the reset frame
    assert "joint_velocities" not in obs.info and "applied_velocity" not in obs.info  # not observable here


@pytest.mark.parametrize("silent", ["scene", "wrist", "joint_state"])
def test_a_silent_input_raises_stale_input_error_naming_it(silent):
    env, link = make_env()
    env.set_task(TRAIN[0])
    env.reset()
    env.step(np.zeros(5))
    link.silenced[silent] = link.now()
    with pytest.raises(StaleInputError) as info:
        env.step(np.zeros(5))
    assert info.value.input_name == silent
    assert info.value.age_s > 0 and silent in str(info.value)


def test_inputs_never_received_raise():
    link = FakeRobotLink()
    link.silenced["wrist"] = 0.0
    env, _ = make_env(link)
    env.set_task(TRAIN[0])
    with pytest.raises(StaleInputError, match="wrist: never received"):
        env.reset()


def test_a_frame_is_never_reused_even_when_young():
    # A camera slower than the control rate: its newest frame is younger than image_max_age_s but was
    # already used at the previous tick -> the tick must raise instead of reusing it.
    link = FakeRobotLink(camera_hz=2.0)
    env, _ = make_env(link, image_max_age_s=0.6, input_grace_s=0.01)
    env.set_task(TRAIN[0])
    env.reset()
    with pytest.raises(StaleInputError, match="no new message"):
        for _ in range(3):
            env.step(np.zeros(5))


def test_success_topic_replaces_fk_success():
    link = FakeRobotLink()
    env, _ = make_env(link, use_success_topic=True)
    env.set_task(TRAIN[0])
    with pytest.raises(StaleInputError, match="success"):
        env.reset()
    link.success = True
    env.reset()
    obs = env.step(np.zeros(5))
    assert obs.success and obs.sparse_reward == pytest.approx(obs.dense_reward + 1.0)
    assert obs.info["fk_success"] is True  # q = 0 = target of task 0 also by FK


def test_homing_failure_propagates():
    link = FakeRobotLink()
    link.fail_home = True
    env, _ = make_env(link)
    env.set_task(TRAIN[0])
    with pytest.raises(RobotTimeoutError):
        env.reset()


def test_crop_and_resize():
    image = np.zeros((480, 640, 3), np.uint8)
    image[:240, :320] = 255  # top-left quarter white
    out = crop_and_resize(image, (0.0, 0.0, 0.5, 0.5), 64)
    assert out.shape == (64, 64, 3) and out.min() == 255
    out = crop_and_resize(image, (0.5, 0.5, 1.0, 1.0), 64)
    assert out.max() == 0
    with pytest.raises(ValueError):
        crop_and_resize(image.astype(np.float32), (0, 0, 1, 1), 64)


@pytest.mark.parametrize(
    "bad",
    [
        dict(control_hz=0),
        dict(scene_crop=(0.5, 0, 0.4, 1)),
        dict(wrist_crop=(0, 0, 1)),
        dict(action_scale=(0.5, -1.0)),
        dict(image_max_age_s=0),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        RemoteEnvConfig(**bad)


def test_the_arm_is_stopped_after_the_last_step_of_an_episode():
    env, link = make_env(episode_length=3)
    env.set_task(TRAIN[0])
    env.reset()
    for _ in range(2):
        env.step(np.ones(5))
    assert np.any(link.qdot != 0)  # mid-episode the command is held
    env.step(np.ones(5))
    assert np.all(link.qdot == 0)
