"""Helpers every meld_ros node shares: config parameters, diagnostics, stamps, images and `main()`.

Nothing here has behaviour worth testing apart from ROS itself: the parameter rows come from
`meld_core.bridge.paramspec`, the diagnostic records from `meld_core.hardware.diagnostics`, the
image byte layout from `meld_core.bridge.images`, the signal and shutdown-error policy from
`meld_core.bridge.shutdown`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from meld_core.bridge.images import image_array, image_fields
from meld_core.bridge.node_params import NODE_PARAMS, configs_from_params
from meld_core.bridge.shutdown import StopSignals, is_shutdown_error
from meld_core.hardware.diagnostics import DiagStatus

_ROS_TYPES = {
    "bool": Parameter.Type.BOOL,
    "int": Parameter.Type.INTEGER,
    "float": Parameter.Type.DOUBLE,
    "str": Parameter.Type.STRING,
    "bool_array": Parameter.Type.BOOL_ARRAY,
    "int_array": Parameter.Type.INTEGER_ARRAY,
    "float_array": Parameter.Type.DOUBLE_ARRAY,
    "str_array": Parameter.Type.STRING_ARRAY,
}


def declare_config(node: Node, executable: str, overrides: dict | None = None) -> list:
    """Declare the node's parameters (`meld_core.bridge.node_params.NODE_PARAMS[executable]`: one read-only
    parameter per config field, described by the field's comment) and build the config dataclasses.

    This is the single place where a node's ROS parameters become its config. `overrides`
    changes defaults (dotted names) before launch/YAML overrides apply.
    """
    values = {}
    for group in NODE_PARAMS[executable]:
        for spec in group.specs():
            name = group.prefix + spec.name
            default = (overrides or {}).get(name, spec.default)
            descriptor = ParameterDescriptor(description=spec.doc, read_only=True)
            param = node.declare_parameter(name, default, descriptor)
            if param.type_ != _ROS_TYPES[spec.kind]:
                raise TypeError(f"parameter {name} has type {param.type_.name}, expected {spec.kind}")
            values[name] = param.value
    return configs_from_params(executable, values)


def to_diagnostic(name: str, hardware_id: str, status: DiagStatus) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=bytes([int(status.level)]),
        name=name,
        message=status.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in status.values.items()],
    )


def diagnostic_array(node: Node, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.status = statuses
    return msg


def stamp_to_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def now_seconds(node: Node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


def image_msg(rgb: np.ndarray, stamp, frame_id: str) -> Image:
    """An rgb8 sensor_msgs/Image of an (H, W, 3) uint8 array (no cv_bridge: see meld_core.bridge.images)."""
    msg = Image(**image_fields(rgb))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def image_rgb(msg: Image) -> np.ndarray:
    """The (H, W, 3) uint8 RGB pixels of an Image (rgb8, bgr8, rgba8, bgra8 or mono8)."""
    return image_array(msg.height, msg.width, msg.encoding, msg.step, msg.data)


# The main loop wakes this often to notice a stop request (rclpy's own signal handler is not installed).
SPIN_PERIOD_S = 0.1


def start_ros(args=None, on_stop: Callable[[], None] | None = None) -> StopSignals:
    """rclpy.init with the meld signal policy (meld_core.bridge.shutdown.StopSignals) instead of
    rclpy's handler: a signal asks to stop, and the ROS context stays valid for the exit work."""
    signals = StopSignals(on_stop).install()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return signals


def exit_code(exc: BaseException, node: Node | None, signals: StopSignals, what: str) -> int:
    """0 for an error that only says the process is shutting down; otherwise log it (FATAL) and 1."""
    if is_shutdown_error(exc, stopping=signals.stop_requested or not rclpy.ok()):
        return 0
    message = f"{type(exc).__name__}: {exc}"
    if node is not None:
        node.get_logger().fatal(message)
    else:
        print(f"[FATAL] [{what}]: {message}", flush=True)
    return 1


def finish(node: Node | None, executor: Executor, on_exit: Callable[[Node], None] | None = None) -> None:
    """A node's exit work, then the node, the executor and the context; late errors are logged."""
    if node is not None:
        if on_exit is not None:
            try:
                on_exit(node)
            except Exception as exc:
                node.get_logger().error(f"on exit: {type(exc).__name__}: {exc}")
        try:
            executor.remove_node(node)
            node.destroy_node()
        except Exception as exc:  # e.g. a context already shut down: nothing left to release
            node.get_logger().warning(f"destroying the node: {type(exc).__name__}: {exc}")
    executor.shutdown(timeout_sec=2.0)
    rclpy.try_shutdown()


def run_node(make_node: Callable[[], Node], *, num_threads: int = 4,
             on_exit: Callable[[Node], None] | None = None, single_threaded: bool = False, args=None) -> int:
    """Spin a node until SIGINT/SIGTERM, then run `on_exit(node)` with the context still valid.

    Signals follow meld_core.bridge.shutdown.StopSignals (the first stops, the copy that `ros2 launch`
    sends on top of the terminal's Ctrl-C is the same stop, a later one aborts), so the arm node can
    still publish zero velocity on exit. Errors that only say the node is shutting down exit 0; any
    other exits 1 with a FATAL line. With `single_threaded`, every callback runs in this (the main)
    thread: needed where a resource is bound to the thread that created it (MuJoCo's EGL context in
    sim_node).
    """
    signals = start_ros(args)
    node = None
    code = 0
    executor = SingleThreadedExecutor() if single_threaded else MultiThreadedExecutor(num_threads=num_threads)
    try:
        node = make_node()
        executor.add_node(node)
        while not signals.stop_requested and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except (KeyboardInterrupt, Exception) as exc:
        code = exit_code(exc, node, signals, "meld_ros")
    finally:
        signals.settle()
        finish(node, executor, on_exit)
    return code
