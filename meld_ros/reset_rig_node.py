"""The Arduino reset rig as a ROS 2 lifecycle node.

    ros2 run meld_ros reset_rig_node --ros-args -p port:=/dev/meld_rig
    ros2 lifecycle set /reset_rig configure && ros2 lifecycle set /reset_rig activate   # autostart:=false

configure opens the serial port, activate homes the rig, deactivate stops it, cleanup closes the
port (`meld_core.hardware.rig_supervisor.RigSupervisor` holds the state machine). With
`autostart` (default) the node configures and activates itself. Interfaces, all standard types,
relative to the node's namespace (the root one on the robot: `/meld/rig/...`):

- `meld/rig/goal_pose` (geometry_msgs/PoseStamped, in): position.x = rail translation in metres,
  yaw = router rotation; blocks the goal callback group until arrival or `move_timeout_s`.
- `meld/rig/pose` (geometry_msgs/PoseStamped, out) and `meld/rig/state` (std_msgs/String, out:
  unconfigured | inactive | homing | idle | moving | stopped | error) at `state_hz`.
- `meld/rig/home`, `meld/rig/stop` (std_srvs/Trigger); `diagnostics`.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import String
from std_srvs.srv import Trigger

from meld_core.bridge import names
from meld_core.hardware.rig_supervisor import (
    RigNodeConfig,
    RigSupervisor,
    RigSupervisorError,
    make_rig_client,
    pose_from_rig,
    rig_from_pose,
)
from meld_ros.common import declare_config, diagnostic_array, run_node, to_diagnostic


def fill_pose(msg: PoseStamped, rotation_deg: float, translation_mm: float) -> PoseStamped:
    (x, y, z), (qx, qy, qz, qw) = pose_from_rig(rotation_deg, translation_mm)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = qx, qy, qz, qw
    return msg


def read_pose(msg: PoseStamped) -> tuple[float, float]:
    p, o = msg.pose.position, msg.pose.orientation
    return rig_from_pose((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))


class ResetRigNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("reset_rig")
        self.config: RigNodeConfig = declare_config(self, "reset_rig_node")[0]
        self.supervisor = RigSupervisor(self.config, make_rig_client)
        self.pose_pub = self.create_publisher(PoseStamped, names.RIG_POSE, 10)
        self.state_pub = self.create_publisher(String, names.RIG_STATE, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        # A goal blocks its group until the rig arrives; stop must stay callable meanwhile.
        self.create_subscription(PoseStamped, names.RIG_GOAL, self._on_goal, 10,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, names.RIG_HOME, self._on_home,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, names.RIG_STOP, self._on_stop,
                            callback_group=MutuallyExclusiveCallbackGroup())
        reporting = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0 / self.config.state_hz, self._publish_state, callback_group=reporting)
        self.create_timer(1.0, self._diagnostics, callback_group=reporting)
        if self.config.autostart:
            self._autostart_timer = self.create_timer(0.1, self._autostart,
                                                      callback_group=MutuallyExclusiveCallbackGroup())

    # ------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.trigger_configure()
        if self.supervisor.state.value == "inactive":
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.supervisor.configure()
        except Exception as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        where = "in-process fake rig" if self.config.driver == "fake" else self.config.port
        self.get_logger().info(f"reset rig connected ({where})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.supervisor.activate()
        except Exception as exc:
            self.get_logger().error(f"activate (homing) failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("reset rig homed and active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.supervisor.deactivate()
        except Exception as exc:
            self.get_logger().error(f"deactivate (stop) failed: {exc}")
            return TransitionCallbackReturn.ERROR
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.supervisor.cleanup()
        except Exception as exc:
            self.get_logger().error(f"cleanup failed: {exc}")
            return TransitionCallbackReturn.ERROR
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.supervisor.shutdown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error("reset rig in error processing: stopping and closing the port")
        self.supervisor.shutdown()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------ interfaces
    def _on_goal(self, msg: PoseStamped) -> None:
        try:
            rotation_deg, translation_mm = read_pose(msg)
            self.get_logger().info(
                f"goal: rotation {rotation_deg:.2f} deg, translation {translation_mm:.2f} mm")
            self.supervisor.move(rotation_deg, translation_mm)
        except (ValueError, RigSupervisorError) as exc:
            self.get_logger().error(f"goal refused: {exc}")
        except Exception as exc:
            self.get_logger().error(f"goal failed: {exc}")

    def _on_home(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            self.supervisor.home()
            response.success, response.message = True, "homed"
        except Exception as exc:
            response.success, response.message = False, str(exc)
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            self.supervisor.stop()
            response.success, response.message = True, "stopped; call /meld/rig/home to resume"
        except Exception as exc:
            response.success, response.message = False, str(exc)
        return response

    def _publish_state(self) -> None:
        self.state_pub.publish(String(data=self.supervisor.state.value))
        try:
            position = self.supervisor.position()
        except Exception as exc:
            self.get_logger().warning(f"could not read the rig position: {exc}", throttle_duration_sec=10.0)
            return
        if position is not None:
            msg = PoseStamped()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self.config.frame_id
            self.pose_pub.publish(fill_pose(msg, *position))

    def _diagnostics(self) -> None:
        self.diag_pub.publish(diagnostic_array(self, [to_diagnostic(
            f"{self.get_name()}: reset rig", self.config.port, self.supervisor.status())]))


def main(args=None) -> int:
    return run_node(ResetRigNode, num_threads=4, on_exit=lambda node: node.supervisor.shutdown(), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
