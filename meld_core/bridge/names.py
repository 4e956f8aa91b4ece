"""Topic and service names of the meld graph, written once and relative, so a namespace moves a graph.

A node resolves these in its own namespace: in the robot's graph (the root namespace)
`meld/arm/home` is `/meld/arm/home` and xs_sdk's joint states are `/wx200/joint_states`; the sim
launch files push the `sim` namespace, so the simulated graph's names are `/sim/meld/arm/home`,
`/sim/wx200/joint_states` and so on, and a simulation on the robot PC never reaches the real
reset rig or the real xs_sdk (and they never reach it).
"""

from __future__ import annotations

SCENE_IMAGE = "meld/scene/image_raw"  # sensor_msgs/Image, sensor-data QoS
WRIST_IMAGE = "meld/wrist/image_raw"  # sensor_msgs/Image, sensor-data QoS
ARM_COMMAND = "meld/arm/velocity_command"  # sensor_msgs/JointState (velocity, rad/s) -> arm_node
ARM_HEARTBEAT = "meld/arm/heartbeat"  # sensor_msgs/JointState from arm_node at its tick: what it commands
ARM_HOME = "meld/arm/home"  # std_srvs/Trigger
ARM_STOP = "meld/arm/stop"  # std_srvs/Trigger
RIG_GOAL = "meld/rig/goal_pose"  # geometry_msgs/PoseStamped
RIG_POSE = "meld/rig/pose"  # geometry_msgs/PoseStamped
RIG_STATE = "meld/rig/state"  # std_msgs/String
RIG_HOME = "meld/rig/home"  # std_srvs/Trigger
RIG_STOP = "meld/rig/stop"  # std_srvs/Trigger
SUCCESS = "meld/success"  # std_msgs/Bool
AGENT_PROGRESS = "meld/agent/progress"  # std_msgs/String (JSON)
DIAGNOSTICS = "diagnostics"  # diagnostic_msgs/DiagnosticArray (/diagnostics in the root namespace)

# xs_sdk's interfaces, relative to its robot namespace (see xs_sdk())
JOINT_STATES = "joint_states"
JOINT_GROUP = "commands/joint_group"
SET_OPERATING_MODES = "set_operating_modes"
TORQUE_ENABLE = "torque_enable"
GET_ROBOT_INFO = "get_robot_info"
GET_MOTOR_REGISTERS = "get_motor_registers"


def xs_sdk(robot_name: str, name: str) -> str:
    """An xs_sdk interface of `robot_name` (xs_sdk lives in the `<robot_name>` namespace)."""
    if not robot_name or robot_name.startswith("/"):
        raise ValueError(f"robot_name must be a relative name such as 'wx200', got {robot_name!r}")
    return f"{robot_name}/{name}"


def absolute(namespace: str, name: str) -> str:
    """`name` as a node in `namespace` resolves it: absolute("/sim", "meld/success") = "/sim/meld/success"."""
    if name.startswith("/"):
        return name
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{prefix}/{name}"


def recorded_topics(robot_name: str, namespace: str = "/") -> list[str]:
    """What `record:=true` writes to the run's bag: every input and output of a run."""
    relative = [SCENE_IMAGE, WRIST_IMAGE, ARM_COMMAND, ARM_HEARTBEAT, RIG_GOAL, RIG_POSE, RIG_STATE, SUCCESS,
                AGENT_PROGRESS, DIAGNOSTICS, xs_sdk(robot_name, JOINT_STATES),
                xs_sdk(robot_name, JOINT_GROUP)]
    return [absolute(namespace, name) for name in relative]


# ROS_AUTOMATIC_DISCOVERY_RANGE values (Iron and newer); "" leaves the environment as it is.
DISCOVERY_RANGES = ("", "LOCALHOST", "SUBNET", "SYSTEM_DEFAULT", "OFF")
_DISTROS_WITHOUT_RANGE = ("foxy", "galactic", "humble")  # only ROS_LOCALHOST_ONLY exists there


def discovery_environment(discovery_range: str, distro: str) -> dict[str, str | None]:
    """Environment variables (None = unset) that give a launched graph `discovery_range`.

    Jazzy and newer: ROS_AUTOMATIC_DISCOVERY_RANGE, and ROS_LOCALHOST_ONLY unset (it is deprecated,
    and while it is set rcl ignores the range and warns in every process). Humble has only
    ROS_LOCALHOST_ONLY (1 = this machine)."""
    if discovery_range not in DISCOVERY_RANGES:
        raise ValueError(
            f"discovery_range must be one of {DISCOVERY_RANGES[1:]} or empty, got {discovery_range!r}")
    if not discovery_range:
        return {}
    if distro.strip().lower() in _DISTROS_WITHOUT_RANGE:
        if discovery_range == "OFF":
            raise ValueError(f"discovery_range OFF needs ROS 2 Iron or newer (this is {distro})")
        return {"ROS_LOCALHOST_ONLY": "1" if discovery_range == "LOCALHOST" else "0"}
    return {"ROS_AUTOMATIC_DISCOVERY_RANGE": discovery_range, "ROS_LOCALHOST_ONLY": None}
