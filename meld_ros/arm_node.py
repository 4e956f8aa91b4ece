"""Joint-velocity bridge to interbotix xs_sdk with the meld_core safety filter and a deadman.

    ros2 run meld_ros arm_node --ros-args -p robot_name:=wx200 --params-file config/arm_node.yaml

Subscribes `meld/arm/velocity_command` (sensor_msgs/JointState: name + velocity in rad/s; an
empty name list means the arm group's order) and `<robot>/joint_states`; publishes
interbotix_xs_msgs/JointGroupCommand on `<robot>/commands/joint_group` once the `arm` group is in
velocity mode (requested through `<robot>/set_operating_modes` at start-up): zeros first, at once,
so a servo still holding a dead node's last velocity stops. Services `meld/arm/home` and
`meld/arm/stop` (std_srvs/Trigger). All names are relative (the root namespace on the robot, `sim`
in the sim launches). All behaviour (filtering, deadman, home servo, stop latch, counters) is
`meld_core.bridge.arm_bridge.ArmBridge`; this node only wires it.

From velocity mode on, every tick publishes a heartbeat on `meld/arm/heartbeat` (sensor_msgs/JointState:
the velocity last sent to xs_sdk): arm_guard_node stops the arm when it goes silent. On exit
(SIGINT/SIGTERM) the node publishes zero velocity before shutting down.
"""

from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray
from interbotix_xs_msgs.msg import JointGroupCommand
from interbotix_xs_msgs.srv import OperatingModes, RegisterValues
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from meld_core.bridge import names
from meld_core.bridge.arm_bridge import ArmBridge, ArmBridgeConfig, ArmBridgeError
from meld_core.robot.profile import RobotProfile
from meld_ros.common import declare_config, diagnostic_array, now_seconds, run_node, to_diagnostic


class ArmNode(Node):
    def __init__(self) -> None:
        super().__init__("arm")
        self.config: ArmBridgeConfig = declare_config(self, "arm_node")[0]
        # joints, limits, home pose and workspace box: the one robot profile the simulation uses
        self.bridge = ArmBridge(self.config, RobotProfile.load())
        robot = self.config.robot_name
        control = MutuallyExclusiveCallbackGroup()  # commands, joint states and the tick: one at a time
        self.command_pub = self.create_publisher(JointGroupCommand, names.xs_sdk(robot, names.JOINT_GROUP),
                                                 10)
        self.heartbeat_pub = self.create_publisher(JointState, names.ARM_HEARTBEAT, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self.create_subscription(
            JointState, self.config.command_topic, self._on_command, 10, callback_group=control
        )
        self.create_subscription(
            JointState, names.xs_sdk(robot, names.JOINT_STATES), self._on_joint_state, 10,
            callback_group=control
        )
        self.create_timer(1.0 / self.config.tick_hz, self._tick, callback_group=control)
        # Clients awaited from timers live in their own group (never the control group).
        clients = MutuallyExclusiveCallbackGroup()
        self.mode_client = self.create_client(
            OperatingModes, names.xs_sdk(robot, names.SET_OPERATING_MODES), callback_group=clients
        )
        self.registers_client = self.create_client(
            RegisterValues, names.xs_sdk(robot, names.GET_MOTOR_REGISTERS), callback_group=clients
        )
        self.create_service(
            Trigger, names.ARM_HOME, self._on_home, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.create_service(
            Trigger, names.ARM_STOP, self._on_stop, callback_group=MutuallyExclusiveCallbackGroup()
        )
        side = MutuallyExclusiveCallbackGroup()
        self.create_timer(self.config.diagnostics_period_s, self._diagnostics, callback_group=side)
        if self.config.temperature_poll_s > 0:
            self.create_timer(self.config.temperature_poll_s, self._poll_temperatures, callback_group=side)
        self._started = now_seconds(self)
        self._mode_future = None
        self._mode_timer = self.create_timer(0.2, self._request_velocity_mode, callback_group=side)
        self._temps_future = None
        self._publish_lock = threading.Lock()
        self._velocity_mode = False
        self._last_sent = [0.0] * len(self.bridge.joint_names)  # what xs_sdk was last told (the heartbeat)

    # ------------------------------------------------------------- velocity mode at start-up
    def _request_velocity_mode(self) -> None:
        if self._mode_future is None:
            if not self.mode_client.service_is_ready():
                waited = now_seconds(self) - self._started
                if waited > self.config.mode_service_timeout_s:
                    raise TimeoutError(
                        f"{self.mode_client.srv_name} not available after {waited:.0f} s: is xs_sdk running "
                        f"with robot_name {self.config.robot_name!r}?"
                    )
                return
            request = OperatingModes.Request(**self.bridge.operating_mode_request())
            self.get_logger().info(f"putting group {self.config.group!r} in velocity mode")
            self._mode_future = self.mode_client.call_async(request)
            return
        if self._mode_future.done():
            self._mode_future.result()  # raises if the call failed
            self.bridge.velocity_mode_set()
            self._mode_timer.cancel()
            self._velocity_mode = True
            self._tick()  # zeros at once: a servo may still hold the last velocity of a dead arm node
            self.get_logger().info(
                f"group {self.config.group!r} in velocity mode; accepting commands on "
                f"{self.config.command_topic}"
            )

    # ------------------------------------------------------------- control
    def _on_joint_state(self, msg: JointState) -> None:
        try:
            self.bridge.on_joint_state(msg.name, msg.position, now_seconds(self))
        except ArmBridgeError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=5.0)

    def _on_command(self, msg: JointState) -> None:
        # Forward at once, refused or not (a refused NaN command zeros the held one); the timer
        # re-filters the held command in between.
        self.bridge.on_command(msg.name, msg.velocity, now_seconds(self))
        self._tick()

    def _tick(self) -> None:
        velocity = self.bridge.tick(now_seconds(self))
        if velocity is not None:
            self._publish(velocity)
        if self._velocity_mode:
            beat = JointState(name=list(self.bridge.joint_names), velocity=list(self._last_sent))
            beat.header.stamp = self.get_clock().now().to_msg()
            self.heartbeat_pub.publish(beat)

    def _publish(self, velocity) -> None:
        cmd = [float(v) for v in velocity]
        msg = JointGroupCommand(name=self.config.group, cmd=cmd)
        with self._publish_lock:
            self.command_pub.publish(msg)
            self._last_sent = cmd

    # ------------------------------------------------------------- services
    def _on_home(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            self.bridge.start_home(now_seconds(self))
        except ArmBridgeError as exc:
            response.success, response.message = False, str(exc)
            return response
        finished = self.bridge.home_done.wait(timeout=self.config.home_timeout_s + 2.0)
        response.success = bool(finished and self.bridge.home_result)
        response.message = (
            "at home" if response.success else ("homing failed or timed out (arm stopped); see /diagnostics")
        )
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.bridge.stop()
        self._tick()
        response.success, response.message = True, "stopped; call /meld/arm/home to resume"
        return response

    # ------------------------------------------------------------- diagnostics
    def _poll_temperatures(self) -> None:
        if self._temps_future is not None and self._temps_future.done():
            values = list(self._temps_future.result().values)
            if len(values) == len(self.bridge.joint_names):
                self.bridge.set_temperatures(dict(zip(self.bridge.joint_names, map(float, values))))
            self._temps_future = None
        if self._temps_future is None and self.registers_client.service_is_ready():
            self._temps_future = self.registers_client.call_async(
                RegisterValues.Request(cmd_type="group", name=self.config.group, reg="Present_Temperature")
            )

    def _diagnostics(self) -> None:
        status = to_diagnostic(
            f"{self.get_name()}: arm bridge",
            f"{self.config.robot_name}/{self.config.group}",
            self.bridge.status(now_seconds(self)),
        )
        self.diag_pub.publish(diagnostic_array(self, [status]))

    def send_zeros(self) -> None:
        zeros = self.bridge.shutdown_command()
        if zeros is None:
            return
        for _ in range(3):  # best effort: the topic is reliable, but xs_sdk may be going down too
            self._publish(zeros)
        self.get_logger().info("sent zero velocity on exit")


def main(args=None) -> int:
    return run_node(ArmNode, num_threads=4, on_exit=lambda node: node.send_zeros(), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
