"""The WidowX xacro: expands without ROS, passes check_urdf, and matches the Interbotix reference."""

import shutil
import subprocess

import numpy as np
import pytest

from meld_core.robot.kinematics import WidowXKinematics
from meld_core.robot.urdf import UrdfError, UrdfModel, default_urdf_path, expand_xacro

DEG = np.pi / 180.0
# Interbotix wx200 reference table (ros2-widowx-interfaces.md section 2.1): lower, upper, velocity, effort.
REFERENCE = {
    "waist": (-np.pi + 1e-5, np.pi - 1e-5, np.pi, 8.0),
    "shoulder": (-108 * DEG, 113 * DEG, 1.0, 18.0),
    "elbow": (-108 * DEG, 93 * DEG, np.pi, 13.0),
    "wrist_angle": (-100 * DEG, 123 * DEG, np.pi, 5.0),
    "wrist_rotate": (-np.pi + 1e-5, np.pi - 1e-5, np.pi, 1.0),
    "left_finger": (0.015, 0.037, 1.0, 5.0),
}
AXES = {"waist": (0, 0, 1), "shoulder": (0, 1, 0), "elbow": (0, 1, 0), "wrist_angle": (0, 1, 0),
        "wrist_rotate": (1, 0, 0), "gripper": (1, 0, 0), "left_finger": (0, 1, 0)}


@pytest.fixture(scope="module")
def urdf_xml() -> str:
    return expand_xacro()


def _exp(screw: np.ndarray, theta: float) -> np.ndarray:
    """Matrix exponential of a unit-rotation screw (w, v) times theta."""
    w, v = screw[:3], screw[3:]
    k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    rot = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    g = np.eye(3) * theta + (1 - np.cos(theta)) * k + (theta - np.sin(theta)) * k @ k
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = rot, g @ v
    return t


def test_xacro_expands_without_ros(urdf_xml):
    assert default_urdf_path().name == "meld_scene.urdf.xacro"
    model = UrdfModel.from_xml(urdf_xml)
    assert model.root == "world"
    for link in ("base_link", "ee_gripper_link", "plug_tip_link", "router_link", "scene_camera_optical_frame",
                 "wrist_camera_optical_frame", "port_0_link", "port_3_link"):
        assert link in model.links
    assert "<ros2_control" not in urdf_xml and "<gazebo" not in urdf_xml


def test_ros2_control_only_when_asked():
    xml = expand_xacro(use_ros2_control=True, controllers_file="/tmp/controllers.yaml")
    assert xml.count('<command_interface name="velocity">') == 5
    assert "gz_ros2_control/GazeboSimSystem" in xml and "/tmp/controllers.yaml" in xml
    assert "ign_ros2_control/IgnitionSystem" in expand_xacro(use_ros2_control=True, gz_flavour="ign")


def test_prefix_and_port_count_args():
    model = UrdfModel.from_xml(expand_xacro(prefix="wx200/", num_ports=2))
    assert "wx200/base_link" in model.links and "wx200/port_1_link" in model.links
    assert "wx200/port_2_link" not in model.links
    kin = WidowXKinematics(model, prefix="wx200/")
    assert np.allclose(kin.forward(np.zeros(5))[:3, 3], [0.408575, 0, 0.31065])


def test_bad_xacro_argument_raises_urdf_error(tmp_path):
    bad = tmp_path / "bad.urdf.xacro"
    bad.write_text('<robot xmlns:xacro="http://www.ros.org/wiki/xacro"><link name="${undefined}"/></robot>')
    with pytest.raises(UrdfError):
        expand_xacro(bad)


@pytest.mark.parametrize("extra", [{}, {"use_ros2_control": True, "controllers_file": "/c.yaml"}])
def test_check_urdf_accepts(tmp_path, extra):
    if shutil.which("check_urdf") is None:
        pytest.skip("check_urdf not installed (Debian package liburdfdom-tools; ./install.sh --test)")
    path = tmp_path / "scene.urdf"
    path.write_text(expand_xacro(**extra))
    result = subprocess.run(["check_urdf", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully Parsed XML" in result.stdout


def test_check_urdf_rejects_a_broken_urdf(tmp_path):
    if shutil.which("check_urdf") is None:
        pytest.skip("check_urdf not installed (Debian package liburdfdom-tools; ./install.sh --test)")
    path = tmp_path / "broken.urdf"
    xml = expand_xacro()
    broken = xml.replace('<limit effort="18"', '<nolimit effort="18"', 1)
    assert broken != xml
    path.write_text(broken)
    result = subprocess.run(["check_urdf", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_joint_names_limits_and_axes_match_reference(urdf_xml):
    model = UrdfModel.from_xml(urdf_xml)
    kin = WidowXKinematics(model)
    assert kin.joint_names == ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")
    for name, (lower, upper, velocity, effort) in REFERENCE.items():
        joint = model.joints[name]
        assert joint.lower == pytest.approx(lower, abs=1e-6), name
        assert joint.upper == pytest.approx(upper, abs=1e-6), name
        assert joint.velocity == pytest.approx(velocity, abs=1e-6), name
        assert joint.effort == pytest.approx(effort), name
    for name, axis in AXES.items():
        assert np.allclose(model.joints[name].axis, axis), name
    assert model.joints["gripper"].type == "continuous"
    assert model.joints["right_finger"].mimic[0] == "left_finger"
    assert np.allclose(kin.velocity_limits, [np.pi, 1.0, np.pi, np.pi, np.pi])


def test_forward_kinematics_home_pose(urdf_xml):
    kin = WidowXKinematics.from_urdf(urdf_xml)
    pose = kin.forward(np.zeros(5))
    assert np.linalg.norm(pose[:3, 3] - [0.408575, 0.0, 0.31065]) < 1e-3
    assert np.allclose(pose[:3, :3], np.eye(3))


def test_forward_kinematics_matches_product_of_exponentials(urdf_xml):
    """Random joint positions: URDF FK equals the Interbotix PoE model (screws from the reference)."""
    kin = WidowXKinematics.from_urdf(urdf_xml)
    screws = np.array([[0, 0, 1, 0, 0, 0], [0, 1, 0, -0.11065, 0, 0], [0, 1, 0, -0.31065, 0, 0.05],
                       [0, 1, 0, -0.31065, 0, 0.25], [1, 0, 0, 0, 0.31065, 0]], dtype=float)
    home = np.eye(4)
    home[:3, 3] = [0.408575, 0, 0.31065]
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(kin.lower, kin.upper)
        poe = np.eye(4)
        for screw, theta in zip(screws, q):
            poe = poe @ _exp(screw, theta)
        assert np.allclose(kin.forward(q), poe @ home, atol=1e-9)


def test_jacobian_matches_finite_differences(urdf_xml):
    kin = WidowXKinematics.from_urdf(urdf_xml)
    q = np.array([0.2, -0.3, 0.4, 0.5, 0.3])
    jac = kin.jacobian(q, "plug_tip_link")
    eps = 1e-6
    for i in range(5):
        dq = np.zeros(5)
        dq[i] = eps
        diff = (kin.tool_pose(q + dq)[:3, 3] - kin.tool_pose(q - dq)[:3, 3]) / (2 * eps)
        assert np.allclose(jac[:3, i], diff, atol=1e-7)


def test_inverse_kinematics_reaches_a_port_pointing_down(urdf_xml):
    kin = WidowXKinematics.from_urdf(urdf_xml)
    target = kin.model.transform("base_link", "port_1_link", {"rig_rotation": 0.1, "rig_rail": 0.01})
    result = kin.inverse(target, np.array([0.0, 0.3, 0.3, 1.0, 0.0]), tip="plug_tip_link")
    assert result.converged, result
    assert np.all(result.q >= kin.lower) and np.all(result.q <= kin.upper)
    assert np.linalg.norm(kin.tool_pose(result.q)[:3, 3] - target[:3, 3]) < 1e-3


def test_yourdfpy_agrees_with_our_forward_kinematics(urdf_xml, tmp_path):
    yourdfpy = pytest.importorskip("yourdfpy")
    path = tmp_path / "scene.urdf"
    path.write_text(urdf_xml)
    robot = yourdfpy.URDF.load(str(path), load_meshes=False, build_scene_graph=True)
    kin = WidowXKinematics.from_urdf(urdf_xml)
    q = np.array([0.3, -0.2, 0.5, 0.7, -0.4])
    robot.update_cfg(dict(zip(kin.joint_names, q)))
    theirs = robot.get_transform("plug_tip_link", "base_link")
    assert np.allclose(theirs, kin.tool_pose(q), atol=1e-9)


def test_default_urdf_path_honours_meld_urdf_dir(tmp_path, monkeypatch):
    (tmp_path / "meld_scene.urdf.xacro").write_text("<robot name='x'/>")
    monkeypatch.setenv("MELD_URDF_DIR", str(tmp_path))
    assert default_urdf_path() == tmp_path / "meld_scene.urdf.xacro"
    with pytest.raises(UrdfError, match="MELD_URDF_DIR"):
        default_urdf_path("no_such_file.xacro")
