"""A second, independent stop for the arm: zero velocity to xs_sdk when arm_node goes silent.

    ros2 run meld_ros arm_guard_node --ros-args -p robot_name:=wx200

Every launch file starts it next to arm_node, as its own process. It subscribes arm_node's
`meld/arm/heartbeat`, xs_sdk's `<robot>/commands/joint_group` and `<robot>/joint_states`, and
publishes interbotix_xs_msgs/JointGroupCommand zeros on `<robot>/commands/joint_group` when the
heartbeat is older than `silence_s` while the arm may be moving; on its own exit it sends zeros if
the arm may be moving. All decisions are `meld_core.bridge.arm_guard.ArmGuard`; this node only wires
it. What it cannot catch (xs_sdk itself dying, both nodes dying, the DDS link to xs_sdk) is listed
in the README's safety section.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from interbotix_xs_msgs.msg import JointGroupCommand
from rclpy.node import Node
from sensor_msgs.msg import JointState

from meld_core.bridge import names
from meld_core.bridge.arm_guard import ArmGuard, ArmGuardConfig
from meld_core.robot.profile import RobotProfile
from meld_ros.common import declare_config, diagnostic_array, now_seconds, run_node, to_diagnostic


class ArmGuardNode(Node):
    def __init__(self) -> None:
        super().__init__("arm_guard")
        self.config: ArmGuardConfig = declare_config(self, "arm_guard_node")[0]
        self.guard = ArmGuard(self.config, RobotProfile.load().joint_names)
        joint_group = names.xs_sdk(self.config.robot_name, names.JOINT_GROUP)
        joint_states = names.xs_sdk(self.config.robot_name, names.JOINT_STATES)
        # One (default) callback group: every input and the tick run one at a time.
        self.command_pub = self.create_publisher(JointGroupCommand, joint_group, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self.create_subscription(JointState, names.ARM_HEARTBEAT, self._on_heartbeat, 10)
        self.create_subscription(JointGroupCommand, joint_group, self._on_command, 10)
        self.create_subscription(JointState, joint_states, self._on_joint_state, 10)
        self.create_timer(1.0 / self.config.tick_hz, self._tick)
        self.create_timer(1.0, self._diagnostics)
        self.get_logger().info(
            f"guarding {self.command_pub.topic_name}: zeros when {names.ARM_HEARTBEAT} is silent for "
            f"{self.config.silence_s:g} s while the arm moves")

    def _on_heartbeat(self, msg: JointState) -> None:
        self.guard.on_heartbeat(msg.velocity, now_seconds(self))

    def _on_command(self, msg: JointGroupCommand) -> None:
        self.guard.on_group_command(msg.name, msg.cmd, now_seconds(self))

    def _on_joint_state(self, msg: JointState) -> None:
        self.guard.on_joint_state(msg.name, msg.velocity, now_seconds(self))

    def _tick(self) -> None:
        zeros = self.guard.tick(now_seconds(self))
        if zeros is not None:
            self._publish(zeros)

    def _publish(self, velocity) -> None:
        self.command_pub.publish(JointGroupCommand(name=self.config.group, cmd=[float(v) for v in velocity]))

    def _diagnostics(self) -> None:
        where = f"{self.config.robot_name}/{self.config.group}"
        status = to_diagnostic(f"{self.get_name()}: arm guard", where, self.guard.status(now_seconds(self)))
        self.diag_pub.publish(diagnostic_array(self, [status]))

    def send_zeros_on_exit(self) -> None:
        zeros = self.guard.exit_command(now_seconds(self))
        if zeros is None:
            return
        for _ in range(3):
            self._publish(zeros)
        self.get_logger().warning("sent zero velocity on exit (the arm may have been moving)")


def main(args=None) -> int:
    return run_node(ArmGuardNode, single_threaded=True, on_exit=lambda node: node.send_zeros_on_exit(),
                    args=args)


if __name__ == "__main__":
    raise SystemExit(main())
