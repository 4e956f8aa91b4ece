"""sim_node's logic (SimRobot) over a fake environment, and the gz adapter's conversion."""

import numpy as np
import pytest

from meld_core.bridge.gz_adapter import GzAdapter, GzAdapterConfig
from meld_core.bridge.sim_robot import SimRobot, SimRobotConfig, sim_env_overrides


class FakeEnv:
    joint_names = ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")

    def __init__(self):
        self.q = np.zeros(5)
        self.steps = []
        self.rig = None
        self.renders = 0

    def joint_state(self):
        return self.q.copy(), np.zeros(5)

    def camera_images(self):
        self.renders += 1
        return {
            "scene": np.full((64, 64, 3), self.renders, np.uint8),
            "wrist": np.zeros((64, 64, 3), np.uint8),
        }

    def apply_velocity(self, qdot):
        self.steps.append(np.asarray(qdot).copy())
        self.q = self.q + np.asarray(qdot) * 0.3

    def set_rig(self, rotation_deg, translation_mm):
        self.rig = (rotation_deg, translation_mm)


def test_group_commands_follow_xs_sdk_rules():
    robot = SimRobot(SimRobotConfig(), FakeEnv())
    assert not robot.joint_group_command("arm", [0.1] * 5)  # still in position mode (xs_sdk default)
    assert robot.set_operating_mode("arm", "velocity")
    assert not robot.joint_group_command("arm", [0.1] * 4)  # wrong length: dropped
    assert not robot.joint_group_command("gripper", [0.1])
    assert robot.joint_group_command("arm", [0.1, 0, 0, 0, 0])
    assert robot.dropped_commands == 3


def test_the_last_velocity_is_held_like_the_servos():
    env = FakeEnv()
    robot = SimRobot(SimRobotConfig(), env)
    robot.set_operating_mode("arm", "velocity")
    robot.joint_group_command("arm", [0.1, 0, 0, 0, 0])
    robot.advance()
    robot.advance()
    assert np.allclose(env.q[0], 0.06) and robot.steps == 2
    robot.joint_group_command("arm", [0.0] * 5)
    robot.advance()
    assert np.allclose(env.q[0], 0.06)


def test_images_are_rendered_once_per_physics_step():
    env = FakeEnv()
    robot = SimRobot(SimRobotConfig(), env)
    first = robot.images()["scene"]
    assert robot.images()["scene"] is first and env.renders == 1
    robot.advance()
    assert robot.images()["scene"][0, 0, 0] == 2


def test_rig_moves_at_finite_speed_then_sets_the_router():
    env = FakeEnv()
    robot = SimRobot(SimRobotConfig(rig_speed_deg_s=4.0, rig_speed_mm_s=5.0), env)
    assert env.rig == (0.0, 0.0)  # the router starts where the rig reports it
    env.rig = None
    robot.rig_goal_request(4.0, 2.0, now=10.0)  # 1 s of rotation, 0.4 s of rail
    assert robot.rig_state == "moving"
    robot.rig_update(10.5)
    assert robot.rig_position == pytest.approx((2.0, 1.0)) and env.rig is None
    robot.rig_update(11.0)
    assert robot.rig_state == "idle" and robot.rig_position == (4.0, 2.0) and env.rig == (4.0, 2.0)


def test_rig_stop_latches_until_home():
    env = FakeEnv()
    robot = SimRobot(SimRobotConfig(), env)
    robot.rig_goal_request(8.0, 0.0, now=0.0)
    robot.rig_update(1.0)
    robot.rig_stop()
    assert robot.rig_state == "stopped" and env.rig == pytest.approx((4.0, 0.0))
    with pytest.raises(ValueError, match="home"):
        robot.rig_goal_request(1.0, 0.0, now=2.0)
    robot.rig_home(now=2.0)
    robot.rig_update(10.0)
    assert robot.rig_state == "idle" and env.rig == (0.0, 0.0)


def test_gz_adapter_reorders_and_drops_like_xs_sdk():
    cfg = GzAdapterConfig(controller_joints=("elbow", "waist", "shoulder", "wrist_angle", "wrist_rotate"))
    adapter = GzAdapter(cfg)
    assert adapter.convert("arm", [1, 2, 3, 4, 5]) is None  # not in velocity mode yet
    assert not adapter.set_mode("group", "arm", "position")
    assert adapter.set_mode("group", "arm", "velocity")
    assert adapter.convert("arm", [1, 2, 3, 4, 5]) == [3.0, 1.0, 2.0, 4.0, 5.0]
    assert adapter.convert("arm", [1, 2]) is None and adapter.convert("gripper", [1, 2, 3, 4, 5]) is None
    assert adapter.dropped == 3
    with pytest.raises(ValueError):
        GzAdapterConfig(controller_joints=("waist",))


def test_sim_env_overrides_come_from_env_config_or_the_run(tmp_path):
    assert sim_env_overrides(SimRobotConfig(env_config='{"image_size": 32}')) == {"image_size": 32}
    (tmp_path / "config.yaml").write_text("env: widowx_insertion\nenv_config:\n  episode_length: 7\n")
    cfg = SimRobotConfig(env_config='{"image_size": 32}', run_dir=str(tmp_path))
    assert sim_env_overrides(cfg) == {"episode_length": 7}
    with pytest.raises(FileNotFoundError, match="run directory"):
        sim_env_overrides(SimRobotConfig(run_dir=str(tmp_path / "none")))
    with pytest.raises(ValueError, match="mapping"):
        sim_env_overrides(SimRobotConfig(env_config="[1, 2]"))
