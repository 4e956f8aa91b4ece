"""A deterministic stand-in for the reset rig, with the interface of ``meld_core.hardware.ResetRig``.

    from meld_core.testing.fake_reset_rig import FakeResetRig
    with FakeResetRig(motion_time_s=0.0) as rig:
        rig.home()
        rig.move_to(3.0, -5.0)

Motions take ``motion_time_s`` of wall time (0 by default), end exactly on the target, and raise the
same typed errors as the real client. Faults are injected with ``fail_next("WATCHDOG")`` (any
protocol error name, or "TIMEOUT" / "DISCONNECT"), ``press_estop()``, and ``release_estop()``.
``calls`` records every command, for assertions.
"""

from __future__ import annotations

import math
import threading
import time

from meld_core.hardware import rig_protocol as proto
from meld_core.hardware.reset_rig import (
    ResetRigConfig,
    RigConnectionError,
    RigLimitError,
    RigNotHomedError,
    RigState,
    RigTimeoutError,
    error_for_code,
)

_PORT = "fake"
_FAULTS = ("TIMEOUT", "DISCONNECT", *(n for n in proto.ERROR_CODES if n != "NONE"))


class FakeResetRig:
    """In-memory rig: same methods, same errors, no serial port."""

    firmware_version = "fake-" + str(proto.PROTOCOL_VERSION)

    def __init__(self, config: ResetRigConfig | None = None, motion_time_s: float = 0.0):
        if motion_time_s < 0:
            raise ValueError("motion_time_s must be >= 0")
        self.config = config or ResetRigConfig(port=_PORT)
        self.motion_time_s = motion_time_s
        self.calls: list[tuple] = []
        self._connected = False
        self._homed = False
        self._estop = False
        self._pose = (0.0, 0.0)
        self._faults: list[str] = []
        self._last_error: str | None = None
        self._seq = 0
        self._moving = threading.Event()
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(self, fault: str) -> None:
        """Make the next command fail with this protocol error name, "TIMEOUT" or "DISCONNECT"."""
        if fault not in _FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(_FAULTS)}")
        self._faults.append(fault)

    def press_estop(self) -> None:
        self._estop = True
        self._homed = False
        self._stop_requested.set()

    def release_estop(self) -> None:
        self._estop = False

    # -- device interface ------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self.calls.append(("connect",))
        if self._connected:
            raise RigConnectionError("fake reset rig is already connected; call disconnect() first")
        self._take_fault("connect")
        self._connected = True

    def disconnect(self) -> None:
        self.calls.append(("disconnect",))
        if self._connected:
            self._stop_requested.set()
        self._connected = False

    def __enter__(self) -> FakeResetRig:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def home(self, timeout_s: float | None = None) -> RigState:
        self.calls.append(("home",))
        self._begin("HOME")
        self._homed = False
        self._run_motion((0.0, 0.0), "HOME", timeout_s)
        self._homed = True
        return self.status()

    def move_to(self, rotation_deg: float, translation_mm: float, timeout_s: float | None = None) -> RigState:
        self.calls.append(("move_to", rotation_deg, translation_mm))
        for value, (lo, hi), name in ((rotation_deg, self.config.rotation_limits_deg, "rotation"),
                                      (translation_mm, self.config.translation_limits_mm, "translation")):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise RigLimitError(f"fake reset rig: {name} {value} is outside the soft limits "
                                    f"[{lo}, {hi}]; ask for a pose inside them",
                                    proto.ERROR_CODES["OUT_OF_RANGE"])
        self._begin("MOVE")
        if not self._homed:
            raise RigNotHomedError("fake reset rig: MOVE before homing; next: home the rig first",
                                   proto.ERROR_CODES["NOT_HOMED"])
        self._run_motion((rotation_deg, translation_mm), "MOVE", timeout_s)
        return self.status()

    def stop(self) -> RigState:
        self.calls.append(("stop",))
        self._check_connected()
        self._stop_requested.set()
        return self.status()

    def status(self) -> RigState:
        self._check_connected()
        moving = self._moving.is_set()
        return RigState(
            state="ESTOP" if self._estop else ("MOVING" if moving else "IDLE"), homed=self._homed,
            rotation_deg=self._pose[0], translation_mm=self._pose[1],
            rotation_steps=round(self._pose[0] * self.config.steps_per_deg),
            translation_steps=round(self._pose[1] * self.config.steps_per_mm),
            estop=self._estop, last_motion_seq=self._seq, error=self._last_error,
            firmware_version=self.firmware_version,
        )

    # -- internals -------------------------------------------------------------------------

    def _check_connected(self) -> None:
        if not self._connected:
            raise RigConnectionError("fake reset rig is not connected; call connect() first")

    def _take_fault(self, what: str) -> None:
        if not self._faults:
            return
        fault = self._faults.pop(0)
        if fault == "DISCONNECT":
            self._connected = False
            raise RigConnectionError(f"fake reset rig: {what} failed: device went away; reconnect and home")
        if fault == "TIMEOUT":
            raise RigTimeoutError(f"fake reset rig: {what} did not finish in time; the rig was stopped")
        if fault in ("LIMIT_HIT", "ESTOP", "HOME_FAILED", "WATCHDOG"):
            self._homed = self._homed and fault == "WATCHDOG"
        self._last_error = fault
        raise error_for_code(proto.ERROR_CODES[fault], _PORT, what)

    def _begin(self, what: str) -> None:
        self._check_connected()
        with self._lock:
            self._seq += 1
        if self._estop:
            raise error_for_code(proto.ERROR_CODES["ESTOP"], _PORT, what)
        if self._moving.is_set():
            raise error_for_code(proto.ERROR_CODES["BUSY"], _PORT, what)
        self._take_fault(what)

    def _run_motion(self, target: tuple[float, float], what: str, timeout_s: float | None) -> None:
        self._stop_requested.clear()
        self._moving.set()
        try:
            deadline = timeout_s if timeout_s is not None else math.inf
            wait = min(self.motion_time_s, deadline)
            stopped = self._stop_requested.wait(wait) if wait > 0 else self._stop_requested.is_set()
            if stopped:
                code = "ESTOP" if self._estop else "STOPPED"
                self._last_error = code
                raise error_for_code(proto.ERROR_CODES[code], _PORT, what)
            if self.motion_time_s > deadline:
                self._last_error = None
                raise RigTimeoutError(f"fake reset rig: {what} did not finish within {timeout_s} s; "
                                      "the rig was stopped")
            self._pose = (float(target[0]), float(target[1]))
            self._last_error = None
        finally:
            self._moving.clear()
            time.sleep(0)
