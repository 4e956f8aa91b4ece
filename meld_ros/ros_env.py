"""`RosRobotLink`: the `meld_core.bridge.remote_env.RobotLink` of the agent node, over rclpy.

The TaskEnv itself (`meld_core.bridge.remote_env.RemoteRobotEnv`: 3.3 Hz tick schedule, staleness
checks, image preprocessing, rewards from forward kinematics) and the link's waits
(`meld_core.bridge.link_waits`: rig arrival) have no ROS in them; this class only keeps the newest
message of every input and turns commands into messages and service calls. Names are relative
(`meld_core.bridge.names`), so the agent talks to the graph of its own namespace:

- in: `meld/scene/image_raw`, `meld/wrist/image_raw` (sensor_msgs/Image, sensor-data QoS),
  `<robot>/joint_states` (sensor_msgs/JointState), `meld/success` (std_msgs/Bool, optional),
  `meld/rig/pose` + `meld/rig/state` (reset rig);
- out: `meld/arm/velocity_command` (sensor_msgs/JointState, velocities in rad/s),
  `meld/rig/goal_pose` (geometry_msgs/PoseStamped); service calls `meld/arm/home`, `meld/arm/stop`.

Subscriptions only store messages (a reentrant group); image conversion happens when a control
tick asks for a frame. The trainer calls this from its own thread, never from an executor thread,
so waiting here (with deadlines) never starves a callback.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from meld_core.bridge import names
from meld_core.bridge.arm_bridge import ArmBridgeError, reorder
from meld_core.bridge.link_waits import wait_for_rig
from meld_core.bridge.remote_env import RobotTimeoutError
from meld_ros.common import image_rgb, now_seconds, stamp_to_seconds
from meld_ros.reset_rig_node import fill_pose, read_pose


class RosRobotLink:
    """RobotLink over topics and services of the meld graph (see the module docstring)."""

    def __init__(self, node: Node, *, robot_name: str, joint_names: tuple[str, ...],
                 rig_tolerance: tuple[float, float], scene_topic: str = names.SCENE_IMAGE,
                 wrist_topic: str = names.WRIST_IMAGE, use_success_topic: bool = False) -> None:
        self.node = node
        self.joint_names = tuple(joint_names)
        self.rig_tolerance = rig_tolerance  # (deg, mm): RemoteEnvConfig.rig_tolerance_deg/_mm
        self._lock = threading.Lock()
        self._images: dict[str, tuple[Image, float]] = {}
        self._converted: dict[str, tuple[int, np.ndarray]] = {}
        self._joint_state: tuple[np.ndarray, float] | None = None
        self._success: tuple[bool, float] | None = None
        self._rig_pose: tuple[tuple[float, float], float] | None = None
        self._rig_state: tuple[str, float] | None = None
        self._abort = threading.Event()
        inputs = ReentrantCallbackGroup()
        for camera, topic in (("scene", scene_topic), ("wrist", wrist_topic)):
            node.create_subscription(Image, topic, lambda msg, camera=camera: self._on_image(camera, msg),
                                     qos_profile_sensor_data, callback_group=inputs)
        node.create_subscription(JointState, names.xs_sdk(robot_name, names.JOINT_STATES),
                                 self._on_joint_state, 10, callback_group=inputs)
        if use_success_topic:
            node.create_subscription(Bool, names.SUCCESS, self._on_success, 10, callback_group=inputs)
        node.create_subscription(PoseStamped, names.RIG_POSE, self._on_rig_pose, 10, callback_group=inputs)
        node.create_subscription(String, names.RIG_STATE, self._on_rig_state, 10, callback_group=inputs)
        self.command_pub = node.create_publisher(JointState, names.ARM_COMMAND, 10)
        self.rig_goal_pub = node.create_publisher(PoseStamped, names.RIG_GOAL, 10)
        clients = MutuallyExclusiveCallbackGroup()
        self.home_client = node.create_client(Trigger, names.ARM_HOME, callback_group=clients)
        self.stop_client = node.create_client(Trigger, names.ARM_STOP, callback_group=clients)

    # ------------------------------------------------------------------ callbacks (store only)
    def _on_image(self, camera: str, msg: Image) -> None:
        with self._lock:
            self._images[camera] = (msg, stamp_to_seconds(msg.header.stamp))

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            q = reorder(msg.name, msg.position, self.joint_names, "joint state")
        except ArmBridgeError:
            return  # e.g. a gripper-only message; the arm joints come in the full message
        with self._lock:
            self._joint_state = (q, stamp_to_seconds(msg.header.stamp))

    def _on_success(self, msg: Bool) -> None:
        with self._lock:
            self._success = (bool(msg.data), now_seconds(self.node))

    def _on_rig_pose(self, msg: PoseStamped) -> None:
        try:
            pose = read_pose(msg)
        except ValueError:
            return
        with self._lock:
            self._rig_pose = (pose, now_seconds(self.node))

    def _on_rig_state(self, msg: String) -> None:
        with self._lock:
            self._rig_state = (msg.data, now_seconds(self.node))

    # ------------------------------------------------------------------ RobotLink
    def now(self) -> float:
        return now_seconds(self.node)

    def abort(self) -> None:
        """Make every wait of this link raise at once (node shutdown while a trial runs)."""
        self._abort.set()

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise RobotTimeoutError("aborted: the agent node is shutting down")

    def sleep_until(self, t: float) -> None:
        # Poll the node clock so that this follows /clock under use_sim_time as well as wall time.
        while True:
            self._check_abort()
            remaining = t - self.now()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.01))

    def latest_image(self, camera: str) -> tuple[np.ndarray, float] | None:
        with self._lock:
            entry = self._images.get(camera)
        if entry is None:
            return None
        msg, stamp = entry
        cached = self._converted.get(camera)
        if cached is not None and cached[0] == id(msg):
            return cached[1], stamp
        image = image_rgb(msg)
        self._converted[camera] = (id(msg), image)
        return image, stamp

    def latest_joint_state(self) -> tuple[np.ndarray, float] | None:
        with self._lock:
            return self._joint_state

    def latest_success(self) -> tuple[bool, float] | None:
        with self._lock:
            return self._success

    def send_velocity(self, qdot: np.ndarray) -> None:
        msg = JointState()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.name = list(self.joint_names)
        msg.velocity = [float(v) for v in qdot]
        self.command_pub.publish(msg)

    def _call(self, client, timeout_s: float, what: str) -> Trigger.Response:
        deadline = time.monotonic() + timeout_s
        if not client.wait_for_service(timeout_sec=max(0.1, min(timeout_s, 10.0))):
            raise RobotTimeoutError(f"{client.srv_name} is not available: is arm_node running?")
        done = threading.Event()
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda _: done.set())
        while not done.wait(timeout=0.05):
            if self._abort.is_set() or time.monotonic() > deadline:
                future.cancel()
                self._check_abort()
                raise RobotTimeoutError(f"{what} did not answer within {timeout_s:.0f} s")
        return future.result()

    def home_arm(self, timeout_s: float) -> None:
        response = self._call(self.home_client, timeout_s, "arm homing")
        if not response.success:
            raise RobotTimeoutError(f"arm homing failed: {response.message}")

    def stop_arm(self) -> None:
        self.send_velocity(np.zeros(len(self.joint_names)))

    def move_rig(self, rotation_deg: float, translation_mm: float, timeout_s: float) -> None:
        msg = PoseStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = "rig_base"
        fill_pose(msg, rotation_deg, translation_mm)
        sent_at = self.now()
        self.rig_goal_pub.publish(msg)

        def read():
            with self._lock:
                return self._rig_pose, self._rig_state

        wait_for_rig((rotation_deg, translation_mm), read, tolerance=self.rig_tolerance, sent_at=sent_at,
                     timeout_s=timeout_s, check_abort=self._check_abort)
