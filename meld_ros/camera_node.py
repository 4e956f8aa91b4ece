"""A webcam (or a replayed video file) as sensor_msgs/Image on sensor-data QoS.

    ros2 run meld_ros camera_node --ros-args -r __node:=scene_camera -r __ns:=/meld/scene \
        -p source:=/dev/video0 -p frame_id:=scene_camera_optical_frame

Thin adapter over `meld_core.hardware.camera`: parameters -> CameraConfig (one per field),
`CameraSupervisor.poll()` at `fps` in its own callback group, frames -> Image (rgb8, built from the
numpy array: no cv_bridge, so any OpenCV version works), stamped with the node clock right after
the grab, and the supervisor's counters on diagnostics (a dropped camera is reopened with backoff
and reported as ERROR until it is back).
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from meld_core.bridge import names
from meld_core.hardware.camera import CameraConfig, CameraSupervisor, OpenCVCamera
from meld_ros.common import declare_config, diagnostic_array, image_msg, run_node, to_diagnostic


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        self.config: CameraConfig = declare_config(self, "camera_node")[0]
        self.supervisor = CameraSupervisor(OpenCVCamera(self.config))
        self.image_pub = self.create_publisher(Image, self.config.topic, qos_profile_sensor_data)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        # Grabbing blocks for up to a frame period: keep it off the diagnostics' group.
        self.grab_timer = self.create_timer(1.0 / self.config.fps, self._grab,
                                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0, self._diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"camera {self.config.name}: {self.config.source} {self.config.width}x{self.config.height} "
            f"@ {self.config.fps:g} Hz -> {self.image_pub.topic_name}")

    def _grab(self) -> None:
        frame = self.supervisor.poll(time.monotonic())
        if frame is None:
            return
        self.image_pub.publish(image_msg(frame.image, self.get_clock().now().to_msg(), self.config.frame_id))

    def _diagnostics(self) -> None:
        status = to_diagnostic(f"{self.get_name()}: camera {self.config.name}", self.config.source,
                               self.supervisor.status(time.monotonic()))
        self.diag_pub.publish(diagnostic_array(self, [status]))

    def close(self) -> None:
        self.grab_timer.cancel()
        self.supervisor.close()


def main(args=None) -> int:
    return run_node(CameraNode, num_threads=2, on_exit=lambda node: node.close(), args=args)


if __name__ == "__main__":
    raise SystemExit(main())
