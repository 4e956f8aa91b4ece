"""Helpers every meld_ros node shares: config parameters, diagnostics, stamps, and `main()`.

Nothing here has behaviour worth testing apart from ROS itself: the parameter rows come from
`meld_core.bridge.paramspec`, the diagnostic records from `meld_core.hardware.diagnostics`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from meld_core.bridge.node_params import NODE_PARAMS, configs_from_params
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


def run_node(make_node: Callable[[], Node], *, num_threads: int = 4,
             on_exit: Callable[[Node], None] | None = None, keep_context_on_signal: bool = False,
             single_threaded: bool = False, args=None) -> int:
    """Spin a node in a MultiThreadedExecutor with the ros2/demos shutdown pattern.

    With `keep_context_on_signal`, rclpy's own signal handler is not installed: SIGINT/SIGTERM
    raise KeyboardInterrupt in the spinning thread instead, so the context is still valid when
    `on_exit(node)` runs and can still publish (the arm node sends zero velocity). The node must then
    have a timer, so that the executor's wait returns and the signal is seen promptly.
    With `single_threaded`, every callback runs in this (the main) thread: needed where a resource
    is bound to the thread that created it (MuJoCo's EGL context in sim_node).
    """
    if keep_context_on_signal:
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)

        def _raise_interrupt(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, _raise_interrupt)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    else:
        rclpy.init(args=args)
    node = None
    code = 0
    executor = SingleThreadedExecutor() if single_threaded else MultiThreadedExecutor(num_threads=num_threads)
    try:
        node = make_node()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # a node that cannot start or a fatal error: say why, exit non-zero
        if node is not None:
            node.get_logger().fatal(f"{type(exc).__name__}: {exc}")
        else:
            print(f"[FATAL] {type(exc).__name__}: {exc}", flush=True)
        code = 1
    finally:
        # Ctrl-C in a terminal reaches every node twice (from the terminal and from ros2 launch): the
        # second SIGINT must not interrupt the clean-up; SIGTERM (launch's escalation) ends the process.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if node is not None:
            if on_exit is not None:
                try:
                    on_exit(node)
                except Exception as exc:
                    node.get_logger().error(f"on exit: {exc}")
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown()
    return code
