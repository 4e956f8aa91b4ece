"""One robot profile for sim and real: every robot fact written once, safety applied once per path."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from meld_core.bridge.arm_bridge import ArmBridge, ArmBridgeConfig
from meld_core.bridge.node_params import NODE_PARAMS
from meld_core.robot.kinematics import ARM_JOINTS, WidowXKinematics
from meld_core.robot.profile import RobotProfile, profile_facts
from meld_core.robot.urdf import UrdfError, expand_xacro

ROOT = Path(__file__).resolve().parents[1]
ROBOT_FACT_KEYS = {"joint_names", "home_q", "home_positions", "workspace_min", "workspace_max", "hold_time_s",
                   "lower", "upper", "velocity_limits"}


@pytest.fixture(scope="module")
def profile() -> RobotProfile:
    return RobotProfile.load()


def test_profile_reads_the_urdf_and_the_profile_file(profile):
    kin = WidowXKinematics.from_urdf()
    assert profile.joint_names == ARM_JOINTS == kin.joint_names
    assert np.allclose(profile.lower, kin.lower) and np.allclose(profile.upper, kin.upper)
    assert np.allclose(profile.velocity_limits, kin.velocity_limits)
    assert profile.tool_link == "plug_tip_link"
    facts = profile_facts()
    assert profile.home_q == tuple(facts["home_q"])
    assert profile.workspace_min == tuple(facts["workspace_min"])
    assert profile.workspace_max == tuple(facts["workspace_max"])


def test_no_node_parameter_file_repeats_a_robot_fact():
    # The workspace box once differed between the simulation (safety.py defaults) and the real arm
    # path (arm_bridge.py, config/arm_node.yaml): a policy trained in simulation met a tighter box.
    for node in NODE_PARAMS:
        data = yaml.safe_load((ROOT / "config" / f"{node}.yaml").read_text())
        params = next(iter(data.values()))["ros__parameters"]
        repeated = ROBOT_FACT_KEYS & set(params)
        assert not repeated, f"config/{node}.yaml repeats {repeated}"
    for groups in NODE_PARAMS.values():
        for group in groups:
            names = {f.name for f in dataclasses.fields(group.cls())}
            assert not ROBOT_FACT_KEYS & names, f"{group.cls().__name__} has robot-fact fields"


def test_simulation_and_arm_bridge_apply_the_same_limits(profile):
    pytest.importorskip("mujoco")
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv

    env = WidowXInsertionEnv(WidowXInsertionConfig(image_size=32, num_train_tasks=1, num_eval_tasks=1))
    try:
        bridge = ArmBridge(ArmBridgeConfig(), profile)
        assert env.safety.config == bridge.safety.config == profile.safety_config()
        assert env.profile == profile
        assert bridge.joint_names == env.joint_names
        q, _ = env.joint_state()
        assert np.allclose(q, profile.home_q)  # the env resets to the profile's home pose
    finally:
        env.close()


@pytest.mark.parametrize("bad", [
    {"home_q": (0.0, 0.0)},
    {"home_q": (0.0, 5.0, 0.0, 0.0, 0.0)},  # outside the shoulder's URDF limit
    {"workspace_min": (0.5, 0.0, 0.0), "workspace_max": (0.1, 1.0, 1.0)},
    {"workspace_min": (0.12, -0.25, 0.2)},  # the plug tip at home (z 0.15) would be outside the box
    {"hold_time_s": 0.0},
    {"home_q": (0.0, float("nan"), 0.0, 0.0, 0.0)},
])
def test_profile_validation(profile, bad):
    with pytest.raises(ValueError):
        dataclasses.replace(profile, **bad)


def test_profile_file_must_hold_exactly_the_facts(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("home_q: [0, 0, 0, 0, 0]\nworkspace_min: [0, 0, 0]\n")
    with pytest.raises(ValueError, match="missing keys"):
        profile_facts(path)


def test_urdf_arm_joints_are_checked():
    xml = expand_xacro().replace('name="elbow"', 'name="elbow_renamed"')
    with pytest.raises(UrdfError):
        WidowXKinematics.from_urdf(xml)


@pytest.mark.render
def test_the_ros_graph_and_the_in_process_env_command_and_move_the_arm_alike():
    """The same actions through `WidowXInsertionEnv.step` (the env filters) and through the simulated
    ROS graph (RemoteRobotEnv -> ArmBridge filters -> SimRobot holds it): the same joint commands reach
    the actuators and the arm moves the same, including where the workspace box acts. Before the one
    profile, the graph filtered twice with two different boxes (0.25 m and 0.30 m in y)."""
    mujoco = pytest.importorskip("mujoco")
    from meld_core.bridge.agent_run import family_facts, insertion_reward_fn
    from meld_core.bridge.remote_env import RemoteEnvConfig, RemoteRobotEnv
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
    from meld_core.testing.sim_graph import SimGraphLink

    cfg = WidowXInsertionConfig(episode_length=12, num_train_tasks=2, num_eval_tasks=1, image_size=32)
    sim, ref = WidowXInsertionEnv(cfg, seed=0), WidowXInsertionEnv(cfg, seed=0)
    try:
        link = SimGraphLink(sim, cfg.control_hz)
        facts = family_facts(cfg)
        io = RemoteEnvConfig(control_hz=facts["control_hz"], episode_length=facts["episode_length"],
                             image_size=facts["image_size"], action_scale=facts["action_scale"])
        graph = RemoteRobotEnv(io, link, facts["train_tasks"], facts["eval_tasks"], insertion_reward_fn(cfg))
        sent: dict[str, list[np.ndarray]] = {"graph": [], "env": []}
        for name, env in (("graph", sim), ("env", ref)):
            def record(velocity, _apply=env.apply_velocity, _log=sent[name]):
                out = _apply(velocity)
                _log.append(np.array(out))
                return out
            env.apply_velocity = record
        task = graph.train_tasks[0]
        graph.set_task(task)
        ref.set_task(task)
        graph.reset()  # the graph homes with the bridge's servo: start the reference where it ended
        mujoco.mj_copyData(ref.data, ref.model, sim.data)
        sent["graph"].clear()
        actions = np.random.default_rng(0).uniform(-0.3, 0.3, size=(12, 5))
        actions[:, 0] = 1.0  # turn the waist until the plug tip meets the box's y face
        events = set()
        for action in actions:
            graph.step(action)
            events.update(ref.step(action).info["safety_events"])
            assert np.array_equal(sim.joint_state()[0], ref.joint_state()[0])
        assert len(sent["graph"]) == len(sent["env"]) == len(actions)
        for a, b in zip(sent["graph"], sent["env"]):
            assert np.array_equal(a, b)
        # the box acted: the waist, commanded at full speed, stopped the tip at the box's y face (a
        # little inside it: the filter keeps the whole path of each hold in the box, not only its end)
        assert "workspace:y_max" in events
        y = ref.plug_pose()[1, 3]
        assert y == pytest.approx(RobotProfile.load().workspace_max[1], abs=2e-3)
    finally:
        sim.close()
        ref.close()
