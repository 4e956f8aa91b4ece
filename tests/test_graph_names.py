"""The meld graph's names (meld_core.bridge.names): relative, so a namespace separates a simulated
graph from the robot's; the topics record:=true writes; the discovery range of a launched graph."""

import pytest

from meld_core.bridge import names


def test_names_are_relative_and_resolve_in_a_namespace():
    assert names.absolute("/sim", names.ARM_HOME) == "/sim/meld/arm/home"
    assert names.absolute("/", names.ARM_HOME) == "/meld/arm/home"
    joint_group = names.xs_sdk("wx200", names.JOINT_GROUP)
    assert names.absolute("sim", joint_group) == "/sim/wx200/commands/joint_group"
    with pytest.raises(ValueError, match="relative"):
        names.xs_sdk("/wx200", names.JOINT_STATES)


def test_recorded_topics_cover_inputs_commands_and_progress():
    topics = names.recorded_topics("wx200", "/sim")
    assert {"/sim/meld/scene/image_raw", "/sim/meld/wrist/image_raw", "/sim/wx200/joint_states",
            "/sim/wx200/commands/joint_group", "/sim/meld/arm/velocity_command", "/sim/meld/rig/pose",
            "/sim/meld/agent/progress"} <= set(topics)
    assert all(t.startswith("/meld/") or t.startswith("/wx200/") or t == "/diagnostics"
               for t in names.recorded_topics("wx200"))


def test_discovery_range_uses_the_current_variable_and_humbles_fallback():
    # Jazzy: ROS_LOCALHOST_ONLY must go, or rcl ignores the range (and warns in every process).
    assert names.discovery_environment("LOCALHOST", "jazzy") == {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": None}
    assert names.discovery_environment("LOCALHOST", "humble") == {"ROS_LOCALHOST_ONLY": "1"}
    assert names.discovery_environment("SUBNET", "humble") == {"ROS_LOCALHOST_ONLY": "0"}
    assert names.discovery_environment("", "jazzy") == {}
    with pytest.raises(ValueError, match="Iron"):
        names.discovery_environment("OFF", "humble")
    with pytest.raises(ValueError, match="LOCALHOST"):
        names.discovery_environment("localnet", "jazzy")
