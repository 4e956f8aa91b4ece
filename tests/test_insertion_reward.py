"""The insertion reward: poses in, dense/sparse/success out; port poses from the rig in the URDF."""

import numpy as np
import pytest

from meld_core.robot.reward import (
    InsertionGoal,
    InsertionRewardConfig,
    RigGeometry,
    insertion_reward,
    port_pose,
)
from meld_core.robot.urdf import axis_angle_matrix


@pytest.fixture(scope="module")
def rig() -> RigGeometry:
    return RigGeometry.from_urdf()


def _moved(pose, offset_in_port=(0.0, 0.0, 0.0), yaw_deg=0.0):
    out = pose.copy()
    out[:3, 3] = pose[:3, 3] + pose[:3, :3] @ np.asarray(offset_in_port)
    out[:3, :3] = pose[:3, :3] @ axis_angle_matrix(np.array([0.0, 0.0, 1.0]), np.radians(yaw_deg))
    return out


def test_inserted_plug_succeeds(rig):
    port = rig.port_pose(InsertionGoal(port=2, rotation_deg=5.0, translation_mm=-4.0))
    dense, sparse, success, info = insertion_reward(port, port)
    assert success and info["distance_m"] == pytest.approx(0.0) and info["angle_deg"] == pytest.approx(0.0)
    assert dense == pytest.approx(3.375, abs=0.01)  # the reference shape's maximum
    assert sparse == pytest.approx(dense + 1.0)


def test_dense_is_zero_at_3cm_and_decreases_with_distance(rig):
    port = rig.port_pose(InsertionGoal(port=0))
    values = [insertion_reward(_moved(port, (0, 0, -d)), port)[0] for d in (0.0, 0.01, 0.03, 0.1, 0.3)]
    assert values[2] == pytest.approx(0.0, abs=1e-9)
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("offset,yaw,reason", [
    ((0.004, 0.0, 0.0), 0.0, "off the port axis"),
    ((0.0, 0.0, -0.006), 0.0, "not deep enough"),
    ((0.0, 0.0, 0.0), 15.0, "rotated"),
])
def test_no_success_when_misplaced(rig, offset, yaw, reason):
    port = rig.port_pose(InsertionGoal(port=1))
    dense, sparse, success, _ = insertion_reward(_moved(port, offset, yaw), port)
    assert not success, reason
    assert sparse == 0.0
    assert dense < insertion_reward(port, port)[0]


def test_rotation_counts_in_the_dense_reward(rig):
    port = rig.port_pose(InsertionGoal(port=1))
    straight = insertion_reward(_moved(port, (0, 0, -0.02)), port)[0]
    turned = insertion_reward(_moved(port, (0, 0, -0.02), yaw_deg=20.0), port)[0]
    assert turned < straight


def test_port_poses_follow_the_rig(rig):
    base = rig.port_pose(InsertionGoal(port=1))
    shifted = rig.port_pose(InsertionGoal(port=1, translation_mm=7.0))
    assert np.allclose(shifted[:3, 3] - base[:3, 3], [0.0, 0.007, 0.0])
    assert np.allclose(shifted[:3, :3], base[:3, :3])
    # Neighbouring ports are one pitch apart along the router's y axis.
    assert np.linalg.norm(rig.port_pose(InsertionGoal(port=2))[:3, 3] - base[:3, 3]) == pytest.approx(0.022)
    turned = rig.port_pose(InsertionGoal(port=1, rotation_deg=8.0))
    assert np.degrees(np.arccos(np.clip(turned[:3, 0] @ base[:3, 0], -1, 1))) == pytest.approx(8.0)
    assert np.allclose(turned[:3, 2], [0.0, 0.0, -1.0])  # ports always face up: z points down into them
    assert np.allclose(port_pose({"port": 1, "rotation_deg": 8.0}, rig), turned)


def test_inserted_port_detects_the_wrong_port(rig):
    goal = InsertionGoal(port=0, rotation_deg=-3.0, translation_mm=2.0)
    plug = rig.port_pose(goal, port=3)
    assert rig.inserted_port(plug, goal) == 3
    assert not insertion_reward(plug, rig.port_pose(goal))[2]
    assert rig.inserted_port(_moved(plug, (0, 0, -0.05)), goal) == -1


def test_goal_validation(rig):
    with pytest.raises(ValueError):
        InsertionGoal.from_params({"rotation_deg": 1.0})
    with pytest.raises(ValueError):
        rig.port_pose(InsertionGoal(port=rig.num_ports))
    with pytest.raises(ValueError):
        InsertionRewardConfig(lateral_tolerance=0.0)
    assert rig.num_ports == 4 and rig.rotation_limits_deg[1] == pytest.approx(10.0)
