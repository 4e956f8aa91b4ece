"""Optional success sensor: /meld/success from the Ethernet link state of the inserted cable.

    ros2 run meld_ros success_node --ros-args -p interface:=enx00e04c680001

Publishes std_msgs/Bool on meld/success at `poll_hz` (true while the router port the cable plugs
into has carrier), with the debouncing and sysfs reading of `meld_core.hardware.link_state`.
The agent uses it instead of forward kinematics when its `use_success_topic` parameter is true.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Bool

from meld_core.bridge import names
from meld_core.hardware.diagnostics import DiagLevel, DiagStatus
from meld_core.hardware.link_state import LinkStateConfig, LinkStateError, LinkStateMonitor
from meld_ros.common import declare_config, diagnostic_array, run_node, to_diagnostic


class SuccessNode(Node):
    def __init__(self) -> None:
        super().__init__("success")
        self.config: LinkStateConfig = declare_config(self, "success_node")[0]
        self.monitor = LinkStateMonitor(self.config)
        self.monitor.check()  # fail at start-up, with the list of interfaces, if the name is wrong
        self.success_pub = self.create_publisher(Bool, names.SUCCESS, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self.error = ""
        self.state = False
        self.create_timer(1.0 / self.config.poll_hz, self._poll)
        self.create_timer(1.0, self._diagnostics)

    def _poll(self) -> None:
        try:
            self.state = self.monitor.poll()
            self.error = ""
        except LinkStateError as exc:  # a USB NIC that was unplugged: report, keep polling
            self.error = str(exc)
            self.get_logger().error(self.error, throttle_duration_sec=10.0)
            return
        self.success_pub.publish(Bool(data=self.state))

    def _diagnostics(self) -> None:
        values = {"interface": self.config.interface, "link_up": str(self.state),
                  "transitions": str(self.monitor.transitions)}
        status = DiagStatus(DiagLevel.ERROR, self.error, values) if self.error else DiagStatus(
            DiagLevel.OK, "link up" if self.state else "link down", values)
        self.diag_pub.publish(diagnostic_array(self, [to_diagnostic(
            f"{self.get_name()}: success link", self.config.interface, status)]))


def main(args=None) -> int:
    return run_node(SuccessNode, num_threads=2, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
