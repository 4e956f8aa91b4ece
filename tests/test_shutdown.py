"""Stopping processes (meld_core.bridge.shutdown): the signal policy every node and the CLI share,
and which errors only mean "shutting down"."""

import os
import signal

import pytest

from meld_core.bridge.shutdown import StopSignals, is_shutdown_error


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_first_signal_stops_a_copy_is_the_same_stop_a_later_one_aborts():
    clock, stops = Clock(), []
    signals = StopSignals(lambda: stops.append(clock.t), same_within_s=2.0, clock=clock)
    assert not signals.stop_requested
    signals.handle(signal.SIGINT)  # Ctrl-C from the terminal ...
    clock.t += 0.004
    signals.handle(signal.SIGINT)  # ... and the copy ros2 launch sends
    assert signals.stop_requested and stops == [100.0] and signals.signals == 2
    clock.t += 30.0
    with pytest.raises(KeyboardInterrupt):
        signals.handle(signal.SIGTERM)  # launch's escalation: abort


def test_without_a_window_the_second_ctrl_c_aborts_at_once():
    signals = StopSignals(same_within_s=0.0, clock=Clock())
    signals.handle(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        signals.handle(signal.SIGINT)


def test_install_handles_real_signals_and_restore_puts_the_old_handlers_back():
    old = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.stop_requested
    assert signal.getsignal(signal.SIGTERM) is old


class RCLError(RuntimeError):
    """Stands in for rclpy._rclpy_pybind11.RCLError (matched by message, not type)."""


class ExternalShutdownException(Exception):
    """Stands in for rclpy.executors.ExternalShutdownException (matched by name)."""


def test_late_context_errors_count_as_shutdown_only_while_stopping():
    late = RCLError("failed to initialize wait set: the given context is not valid, at ./src/rcl/wait.c:73")
    assert is_shutdown_error(late, stopping=True)
    assert not is_shutdown_error(late, stopping=False)  # without a stop it is a real failure
    assert is_shutdown_error(KeyboardInterrupt(), stopping=False)
    assert is_shutdown_error(ExternalShutdownException(), stopping=False)
    assert not is_shutdown_error(RuntimeError("arm homing failed"), stopping=True)
    assert not is_shutdown_error(TimeoutError("set_operating_modes not available"), stopping=True)
