"""xs_sdk's arm interface on top of a ros2_control velocity controller (gz sim).

    ros2 run meld_ros gz_velocity_adapter_node --ros-args -p robot_name:=wx200

Answers `<robot>/set_operating_modes` (group velocity mode only) and forwards
`<robot>/commands/joint_group` (interbotix_xs_msgs/JointGroupCommand) to the controller's
std_msgs/Float64MultiArray command topic, and relays /joint_states to <robot>/joint_states (relative:
in the node's namespace, `sim` in sim_gazebo.launch.py), so arm_node runs unchanged against Gazebo.
Conversion rules: `meld_core.bridge.gz_adapter.GzAdapter`.
"""

from __future__ import annotations

from interbotix_xs_msgs.msg import JointGroupCommand
from interbotix_xs_msgs.srv import OperatingModes
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from meld_core.bridge import names
from meld_core.bridge.gz_adapter import GzAdapter, GzAdapterConfig
from meld_ros.common import declare_config, run_node


class GzVelocityAdapterNode(Node):
    def __init__(self) -> None:
        super().__init__("gz_velocity_adapter")
        self.config: GzAdapterConfig = declare_config(self, "gz_velocity_adapter_node")[0]
        self.adapter = GzAdapter(self.config)
        robot = self.config.robot_name
        self.command_pub = self.create_publisher(Float64MultiArray, self.config.controller_topic, 10)
        self.create_subscription(JointGroupCommand, names.xs_sdk(robot, names.JOINT_GROUP), self._on_command,
                                 10)
        self.create_service(OperatingModes, names.xs_sdk(robot, names.SET_OPERATING_MODES), self._on_modes)
        self.joint_pub = self.create_publisher(JointState, names.xs_sdk(robot, names.JOINT_STATES), 10)
        self.create_subscription(JointState, self.config.joint_states_in, self.joint_pub.publish, 10)

    def _on_modes(self, request: OperatingModes.Request, response: OperatingModes.Response):
        if not self.adapter.set_mode(request.cmd_type, request.name, request.mode):
            self.get_logger().error(
                f"only group velocity mode exists here, got {request.cmd_type}/{request.name}/{request.mode}"
            )
        return response

    def _on_command(self, msg: JointGroupCommand) -> None:
        data = self.adapter.convert(msg.name, list(msg.cmd))
        if data is None:
            self.get_logger().error(
                f"joint_group command dropped (group {msg.name!r}, {len(msg.cmd)} values, "
                f"velocity mode {self.adapter.velocity_mode})",
                throttle_duration_sec=5.0,
            )
            return
        self.command_pub.publish(Float64MultiArray(data=data))


def main(args=None) -> int:
    return run_node(GzVelocityAdapterNode, num_threads=2, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
