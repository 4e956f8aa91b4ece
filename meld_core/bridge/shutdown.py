"""Stopping a process cleanly: SIGINT/SIGTERM as a two-step stop, and which errors only mean "shutting down".

    signals = StopSignals(on_stop=trainer.request_stop).install()   # first signal: stop cleanly
    ...                                                               # a later one: KeyboardInterrupt
    signals.settle()                                                  # clean-up: ignore Ctrl-C from now on

One policy for the `meld` CLI and every meld_ros node:

- The first SIGINT or SIGTERM asks to stop (`stop_requested`, and `on_stop()` if given); the process
  finishes what it must (a node publishes zero velocity, the agent writes a checkpoint).
- Signals within `same_within_s` of the first count as the same request: Ctrl-C in a terminal
  reaches a launched node twice within milliseconds (from the terminal and from `ros2 launch`).
- A later signal aborts: KeyboardInterrupt in the main thread (launch escalates to SIGTERM after
  its timeout).
- `settle()` for the clean-up itself: SIGINT is ignored, SIGTERM kills (launch's escalation).

Nodes install this instead of rclpy's own handler, so the ROS context stays valid until the node has
finished its exit work. `is_shutdown_error` tells the errors that only say the process is being shut
down (KeyboardInterrupt, rclpy's ExternalShutdownException, an "invalid context" error once a stop
is under way) from real failures, so a node that is stopped late in a wait set does not exit with
a FATAL line and status 1.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# rclpy's exceptions are matched by name: meld_core never imports ROS.
_SHUTDOWN_TYPES = ("ExternalShutdownException", "ShutdownException")
_CONTEXT_GONE = re.compile(
    r"context is not valid|context is invalid|context.*(shut ?down|not initialized)"
    r"|rcl_shutdown already called|has been destroyed|destroyable.*destroyed", re.IGNORECASE)


class StopSignals:
    """SIGINT/SIGTERM handler: the first asks to stop, a distinct later one aborts (module docstring)."""

    def __init__(self, on_stop: Callable[[], None] | None = None, *, same_within_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if same_within_s < 0:
            raise ValueError("StopSignals.same_within_s must be >= 0")
        self.on_stop = on_stop
        self.same_within_s = same_within_s
        self._clock = clock
        self.first_at: float | None = None
        self.signals = 0
        self._previous: dict[int, Any] = {}

    @property
    def stop_requested(self) -> bool:
        return self.first_at is not None

    def handle(self, signum: int, frame: Any = None) -> None:
        """The signal handler (also callable from tests)."""
        now = self._clock()
        self.signals += 1
        if self.first_at is None:
            self.first_at = now
            if self.on_stop is not None:
                self.on_stop()
            return
        if now - self.first_at < self.same_within_s:
            return  # the same Ctrl-C, delivered twice
        raise KeyboardInterrupt

    def install(self) -> StopSignals:
        """Handle SIGINT and SIGTERM here (main thread only); `restore()` puts the old handlers back."""
        for s in STOP_SIGNALS:
            self._previous[s] = signal.signal(s, self.handle)
        return self

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def settle(self) -> None:
        """From now on (the exit work): SIGINT is ignored, SIGTERM ends the process."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()


def is_shutdown_error(exc: BaseException, *, stopping: bool) -> bool:
    """True when `exc` only says that the process is being shut down, not that something failed.

    `stopping`: a stop was requested (a signal) or the ROS context is no longer valid. Errors about
    an invalid context (e.g. rclpy's "failed to initialize wait set: the given context is not
    valid") count only then; without a stop they are real failures."""
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ in _SHUTDOWN_TYPES:
        return True
    return stopping and bool(_CONTEXT_GONE.search(str(exc)))
