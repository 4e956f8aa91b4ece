"""meld_ros.common with a real rclpy (skipped where ROS is absent): a node stopped late in a wait set
exits cleanly, and images go through real messages without cv_bridge.

Run on a ROS build without launch_testing's pytest plugins (they do not load with pytest 8):
    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest tests/test_ros_nodes.py
"""

import signal

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy._rclpy_pybind11 import RCLError  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

from meld_ros import common  # noqa: E402


@pytest.fixture
def keep_signal_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_a_context_error_after_shutdown_is_a_clean_exit(monkeypatch, keep_signal_handlers, capsys):
    # Issue 19: sim_node exited once in 8 shutdowns with "[FATAL] RCLError: failed to initialize wait
    # set: the given context is not valid" (status 1): the context was shut down under the executor.
    def shut_down_under_the_executor(self, *args, **kwargs):
        rclpy.shutdown()
        raise RCLError("failed to initialize wait set: the given context is not valid, at ./src/rcl/wait.c")

    monkeypatch.setattr(MultiThreadedExecutor, "spin_once", shut_down_under_the_executor)
    monkeypatch.setattr(MultiThreadedExecutor, "spin", shut_down_under_the_executor)
    code = common.run_node(lambda: rclpy.create_node("meld_late_context_error_test"))
    assert code == 0
    assert "FATAL" not in capsys.readouterr().out


def test_a_real_failure_still_exits_1_with_a_fatal_line(keep_signal_handlers, capsys):
    def broken():
        raise TimeoutError("set_operating_modes not available after 30 s")

    assert common.run_node(broken) == 1
    assert "[FATAL]" in capsys.readouterr().out


def test_image_messages_round_trip_without_cv_bridge():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    rgb = np.random.default_rng(1).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    msg = common.image_msg(rgb, rclpy.time.Time(seconds=12).to_msg(), "scene_camera_optical_frame")
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("rgb8", 1920, "scene_camera_optical_frame")
    again = deserialize_message(serialize_message(msg), Image)
    assert np.array_equal(common.image_rgb(again), rgb)
