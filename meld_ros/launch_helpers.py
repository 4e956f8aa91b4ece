"""Pieces the launch files share: our nodes with their YAML, the hardware group, argument tables.

    from meld_ros.launch_helpers import declare, meld_node, typed

A launch file keeps only what is its own (its ARGUMENTS table, which nodes it starts, the
parameters it overrides); how a meld_ros node is started (its `config/<executable>.yaml` first,
then the launch overrides, output on screen) lives here once. `tests/test_ros_static.py` reads
`meld_node("<executable>", ...)` calls as starts of meld_ros executables.
"""

from __future__ import annotations

from typing import Any

from launch.actions import DeclareLaunchArgument, EmitEvent, IncludeLaunchDescription, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

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
