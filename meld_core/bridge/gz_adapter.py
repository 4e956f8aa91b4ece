"""JointGroupCommand -> ros2_control velocity-controller command, without ROS (for gz sim).

In `sim_gazebo.launch.py` the arm is a ros2_control `JointGroupVelocityController` whose command
topic takes std_msgs/Float64MultiArray with one value per controller joint. The adapter node makes
that look like xs_sdk to arm_node: it answers `set_operating_modes` (velocity only) and turns each
`/<robot>/commands/joint_group` message into the controller's array, applying xs_sdk's rules:
a command for another group, or with the wrong number of values, is dropped. It also relays the
joint_state_broadcaster's /joint_states to /<robot_name>/joint_states, where xs_sdk publishes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meld_core.robot.kinematics import ARM_JOINTS


@dataclass(frozen=True)
class GzAdapterConfig:
    """Parameters of the xs_sdk-to-ros2_control adapter."""

    robot_name: str = "wx200"  # namespace under which the adapter answers like xs_sdk
    group: str = "arm"  # xs_sdk group name accepted on commands/joint_group
    controller_joints: tuple[str, ...] = ARM_JOINTS  # the velocity controller's `joints`, in its order
    controller_topic: str = "/velocity_controller/commands"  # the controller's Float64MultiArray topic
    joint_states_in: str = "/joint_states"  # broadcaster's topic, relayed to /<robot_name>/joint_states

    def __post_init__(self) -> None:
        if sorted(ARM_JOINTS) != sorted(self.controller_joints):
            raise ValueError(f"GzAdapterConfig: group joints {ARM_JOINTS} and controller joints "
                             f"{self.controller_joints} must be the same set")
        if not self.controller_topic or not self.joint_states_in:
            raise ValueError("GzAdapterConfig.controller_topic and joint_states_in must not be empty")


class GzAdapter:
    """Stateless conversion plus the velocity-mode flag."""

    def __init__(self, config: GzAdapterConfig) -> None:
        self.config = config
        self.velocity_mode = False
        self.dropped = 0
        self._order = [ARM_JOINTS.index(j) for j in config.controller_joints]

    def set_mode(self, cmd_type: str, name: str, mode: str) -> bool:
        if cmd_type == "group" and name in (self.config.group, "all") and mode == "velocity":
            self.velocity_mode = True
            return True
        return False

    def convert(self, name: str, cmd: Sequence[float]) -> list[float] | None:
        """Controller array for a group command, or None when xs_sdk would drop it."""
        if not self.velocity_mode or name != self.config.group or len(cmd) != len(ARM_JOINTS):
            self.dropped += 1
            return None
        return [float(cmd[i]) for i in self._order]
