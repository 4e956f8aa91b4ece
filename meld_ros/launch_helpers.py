"""Pieces the launch files share: our nodes with their YAML, the guarded arm, namespaces, recording.

    from meld_ros.launch_helpers import declare, meld_node, typed

A launch file keeps only what is its own (its ARGUMENTS table, which nodes it starts, the
parameters it overrides); how a meld_ros node is started (its `config/<executable>.yaml` first,
then the launch overrides, output on screen), the arm with its guard, the namespace of a simulated
graph, its discovery range and the bag recorder live here once. `tests/test_ros_static.py` reads
`meld_node("<executable>", ...)` calls as starts of meld_ros executables and checks that sim nodes
start inside `namespaced(...)`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
    UnsetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from meld_core.bridge.names import discovery_environment, recorded_topics

# agent_node finishes the running episode and writes a checkpoint when stopped: time before SIGKILL
AGENT_STOP_TIMEOUT_S = "30"


def declare(arguments: list[tuple[str, Any, str]]) -> list[DeclareLaunchArgument]:
    """One DeclareLaunchArgument per (name, default, description) row of an ARGUMENTS table."""
    return [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, default, text in arguments
    ]


def typed(name: str, value_type: type) -> ParameterValue:
    """Launch argument `name` passed to a node as a parameter of `value_type` (not a string)."""
    return ParameterValue(LaunchConfiguration(name), value_type=value_type)


def config_file(name: str) -> PathJoinSubstitution:
    """share/meld_ros/config/<name>."""
    return PathJoinSubstitution([FindPackageShare("meld_ros"), "config", name])


def meld_node(executable: str, name: str, overrides: dict[str, Any] | None = None, **kwargs: Any) -> Node:
    """Our `executable` as node `name`: config/<executable>.yaml, then `overrides`; extra Node kwargs."""
    return Node(
        package="meld_ros",
        executable=executable,
        name=name,
        output="screen",
        parameters=[config_file(f"{executable}.yaml"), overrides or {}],
        **kwargs,
    )


def agent_node(overrides: dict[str, Any], **kwargs: Any) -> Node:
    """agent_node with time to finish its episode and checkpoint before it is killed."""
    return meld_node(
        "agent_node",
        "agent",
        overrides,
        sigterm_timeout=AGENT_STOP_TIMEOUT_S,
        sigkill_timeout=AGENT_STOP_TIMEOUT_S,
        **kwargs,
    )


def xs_sdk(robot_name: Any, use_rviz: Any) -> IncludeLaunchDescription:
    """interbotix_xsarm_control's xsarm_control.launch.py for `robot_name`.

    Reads the launch arguments robot_model and mode_configs (our velocity-mode YAML by default).
    """
    return IncludeLaunchDescription(
        PathJoinSubstitution(
            [FindPackageShare("interbotix_xsarm_control"), "launch", "xsarm_control.launch.py"]
        ),
        launch_arguments={
            "robot_model": LaunchConfiguration("robot_model"),
            "robot_name": robot_name,
            "use_rviz": use_rviz,
            "mode_configs": LaunchConfiguration("mode_configs"),
        }.items(),
    )


def robot_peripherals() -> list[Node]:
    """Both webcams, the reset rig and (when use_success) the Ethernet success node.

    Reads the launch arguments scene_camera, wrist_camera, rig_port, use_success, success_interface.
    """
    cameras = [
        meld_node("camera_node", f"{role}_camera", {"source": LaunchConfiguration(f"{role}_camera")})
        for role in ("scene", "wrist")
    ]
    rig = meld_node("reset_rig_node", "reset_rig", {"port": LaunchConfiguration("rig_port")})
    success = meld_node(
        "success_node",
        "success",
        {"interface": LaunchConfiguration("success_interface")},
        condition=IfCondition(LaunchConfiguration("use_success")),
    )
    return [*cameras, rig, success]


def shutdown_when_done(action: Node, reason: str) -> RegisterEventHandler:
    """End the whole launch when `action`'s process exits."""
    return RegisterEventHandler(
        OnProcessExit(target_action=action, on_exit=[EmitEvent(event=Shutdown(reason=reason))])
    )


def guarded_arm(robot_name: Any) -> list:
    """arm_node, its guard (arm_guard_node: zeros when arm_node goes silent) and the rule that shuts
    the launch down when arm_node exits (a graph without its arm bridge must not go on)."""
    arm = meld_node("arm_node", "arm", {"robot_name": robot_name})
    guard = meld_node("arm_guard_node", "arm_guard", {"robot_name": robot_name})
    return [arm, guard, shutdown_when_done(arm, "arm_node exited")]


def namespaced(namespace: Any, actions: list) -> GroupAction:
    """`actions` in ROS namespace `namespace` (a simulated graph: its names never meet the robot's)."""
    return GroupAction([PushRosNamespace(namespace), *actions])


def discovery_range(argument: str = "discovery_range") -> OpaqueFunction:
    """Give the launched processes the discovery range of launch argument `argument`
    (ROS_AUTOMATIC_DISCOVERY_RANGE; ROS_LOCALHOST_ONLY on Humble; see names.discovery_environment)."""

    def apply(context):
        env = discovery_environment(LaunchConfiguration(argument).perform(context).strip().upper(),
                                    os.environ.get("ROS_DISTRO", ""))
        return [SetEnvironmentVariable(k, v) if v is not None else UnsetEnvironmentVariable(k)
                for k, v in env.items()]

    return OpaqueFunction(function=apply)


def bag_recorder(robot_name: Any, namespace: Any = "/") -> OpaqueFunction:
    """With launch argument record:=true: `ros2 bag record -s mcap` of the run's topics
    (names.recorded_topics) into <run_dir>/bags/<YYYYmmdd-HHMMSS>."""

    def start(context):
        run_dir = LaunchConfiguration("run_dir").perform(context)
        ns = namespace if isinstance(namespace, str) else namespace.perform(context)
        robot = robot_name if isinstance(robot_name, str) else robot_name.perform(context)
        out = os.path.join(run_dir, "bags", time.strftime("%Y%m%d-%H%M%S"))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd = ["ros2", "bag", "record", "-s", "mcap", "-o", out, *recorded_topics(robot, ns or "/")]
        return [ExecuteProcess(cmd=cmd, name="bag_record", output="screen")]

    return OpaqueFunction(function=start, condition=IfCondition(LaunchConfiguration("record")))
