"""The MuJoCo WidowX insertion world behind the robot's topics and services.

    ros2 run meld_ros sim_node --ros-args -r __ns:=/sim -p robot_name:=wx200

Stands in for xs_sdk (`<robot>/joint_states`, `<robot>/commands/joint_group`,
`<robot>/set_operating_modes`, `<robot>/torque_enable`, `<robot>/get_robot_info`), the two
cameras (`meld/scene/image_raw`, `meld/wrist/image_raw`, sensor-data QoS) and the reset rig
(`meld/rig/goal_pose`, `meld/rig/pose`, `meld/rig/state`, `meld/rig/home`, `meld/rig/stop`),
so arm_node and agent_node run unchanged. All names are relative: the node runs in a namespace
(`sim` in the launch files) and refuses the root namespace, where it would answer on the real
robot's names (`allow_root_namespace` overrides that on a machine without a robot).
Behaviour lives in `meld_core.bridge.sim_robot.SimRobot`; physics advances one control period per
tick of the environment's control rate, holding the last velocity like the servos do. The node
spins in a single thread: the simulation is not thread-safe and MuJoCo's EGL rendering context is
bound to the thread that created it.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from interbotix_xs_msgs.msg import JointGroupCommand
from interbotix_xs_msgs.srv import OperatingModes, RobotInfo, TorqueEnable
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from meld_core.bridge import names
from meld_core.bridge.sim_robot import SimRobot, SimRobotConfig, check_sim_namespace, sim_env_overrides
from meld_ros.common import declare_config, image_msg, now_seconds, run_node
from meld_ros.reset_rig_node import fill_pose, read_pose


def make_sim_env(config: SimRobotConfig):
    """The WidowX insertion environment with the run's env_config overrides."""
    from meld_core.config import config_from_dict
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv

    env_config = config_from_dict(WidowXInsertionConfig, sim_env_overrides(config))
    return WidowXInsertionEnv(env_config, seed=config.seed)


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        self.config: SimRobotConfig = declare_config(self, "sim_node")[0]
        check_sim_namespace(self.get_namespace(), self.config.allow_root_namespace)
        self.env = make_sim_env(self.config)
        self.robot = SimRobot(self.config, self.env)
        robot = self.config.robot_name
        sim = MutuallyExclusiveCallbackGroup()  # everything that touches MuJoCo
        self.joint_pub = self.create_publisher(JointState, names.xs_sdk(robot, names.JOINT_STATES), 10)
        self.image_pubs = {
            "scene": self.create_publisher(Image, names.SCENE_IMAGE, qos_profile_sensor_data),
            "wrist": self.create_publisher(Image, names.WRIST_IMAGE, qos_profile_sensor_data),
        }
        self.frame_ids = {"scene": self.config.scene_frame_id, "wrist": self.config.wrist_frame_id}
        self.rig_pose_pub = self.create_publisher(PoseStamped, names.RIG_POSE, 10)
        self.rig_state_pub = self.create_publisher(String, names.RIG_STATE, 10)
        commands = MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointGroupCommand, names.xs_sdk(robot, names.JOINT_GROUP),
                                 self._on_group_command, 10, callback_group=commands)
        self.create_service(OperatingModes, names.xs_sdk(robot, names.SET_OPERATING_MODES), self._on_modes,
                            callback_group=commands)
        self.create_service(TorqueEnable, names.xs_sdk(robot, names.TORQUE_ENABLE), self._on_torque,
                            callback_group=commands)
        self.create_service(RobotInfo, names.xs_sdk(robot, names.GET_ROBOT_INFO), self._on_info,
                            callback_group=commands)
        self.create_subscription(PoseStamped, names.RIG_GOAL, self._on_rig_goal, 10, callback_group=sim)
        self.create_service(Trigger, names.RIG_HOME, self._on_rig_home, callback_group=sim)
        self.create_service(Trigger, names.RIG_STOP, self._on_rig_stop, callback_group=sim)
        control_hz = float(self.env.spec.control_hz)
        self.create_timer(1.0 / control_hz, self._physics, callback_group=sim)
        self.create_timer(1.0 / self.config.camera_hz, self._cameras, callback_group=sim)
        self.create_timer(1.0 / self.config.joint_state_hz, self._joint_states, callback_group=sim)
        self.create_timer(0.1, self._rig, callback_group=sim)
        self.get_logger().info(
            f"simulating {self.config.robot_name}: physics at {control_hz:g} Hz, cameras at "
            f"{self.config.camera_hz:g} Hz, joint states at {self.config.joint_state_hz:g} Hz")

    # ------------------------------------------------------------------ xs_sdk side
    def _on_group_command(self, msg: JointGroupCommand) -> None:
        if not self.robot.joint_group_command(msg.name, list(msg.cmd)):
            self.get_logger().error(
                f"joint_group command dropped (group {msg.name!r}, {len(msg.cmd)} values)",
                                    throttle_duration_sec=5.0)

    def _on_modes(self, request: OperatingModes.Request, response: OperatingModes.Response):
        if request.cmd_type != "group" or request.mode != "velocity":
            self.get_logger().error(f"set_operating_modes: only group velocity mode is simulated, got "
                                    f"{request.cmd_type}/{request.mode}")
        else:
            self.robot.set_operating_mode(request.name, request.mode)
        return response

    def _on_torque(self, request: TorqueEnable.Request, response: TorqueEnable.Response):
        self.get_logger().info(f"torque_enable {request.name}: {request.enable} (simulated: no effect)")
        return response

    def _on_info(self, request: RobotInfo.Request, response: RobotInfo.Response):
        response.mode = self.robot.modes.get(self.config.group, "position")
        response.profile_type = "velocity"
        response.joint_names = list(self.robot.joint_names)
        response.num_joints = len(self.robot.joint_names)
        return response

    # ------------------------------------------------------------------ periodic
    def _physics(self) -> None:
        self.robot.advance()

    def _joint_states(self) -> None:
        q, qdot = self.robot.joint_state()
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(self.robot.joint_names)
        msg.position = [float(v) for v in q]
        msg.velocity = [float(v) for v in qdot]
        self.joint_pub.publish(msg)

    def _cameras(self) -> None:
        images = self.robot.images()
        stamp = self.get_clock().now().to_msg()
        for name, pub in self.image_pubs.items():
            pub.publish(image_msg(images[name], stamp, self.frame_ids[name]))

    # ------------------------------------------------------------------ reset rig side
    def _rig(self) -> None:
        self.robot.rig_update(now_seconds(self))
        self.rig_state_pub.publish(String(data=self.robot.rig_state))
        msg = PoseStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "rig_base"
        self.rig_pose_pub.publish(fill_pose(msg, *self.robot.rig_position))

    def _on_rig_goal(self, msg: PoseStamped) -> None:
        try:
            self.robot.rig_goal_request(*read_pose(msg), now_seconds(self))
        except ValueError as exc:
            self.get_logger().error(f"rig goal refused: {exc}")

    def _on_rig_home(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.robot.rig_home(now_seconds(self))
        response.success, response.message = True, "homing (simulated)"
        return response

    def _on_rig_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.robot.rig_stop()
        response.success, response.message = True, "stopped (simulated)"
        return response

    def close(self) -> None:
        self.env.close()


def main(args=None) -> int:
    # One thread: MuJoCo's EGL context is current only in the thread that created it.
    return run_node(SimNode, single_threaded=True, on_exit=lambda node: node.close(), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
