"""Serial client for the Arduino reset rig that rotates and slides the router between trials.

    meld rig status --port /dev/ttyACM0
    meld rig home --port /dev/ttyACM0
    meld rig move --rotation-deg 3 --translation-mm -5

Interface (the same for every device in meld_core; ``meld_core.testing.FakeResetRig`` mirrors it)::

    with ResetRig(ResetRigConfig(port="/dev/ttyACM0")) as rig:   # connect(): handshake + CONFIG
        rig.home()                                                 # blocks until the rig reports DONE
        state = rig.move_to(rotation_deg=3.0, translation_mm=-5.0)
        rig.stop()
                                                                   # disconnect(): STOP, then close

Every wait has a deadline; every failure raises a subclass of ``ResetRigError`` whose message says
what to do next. A reader thread, started in ``connect()`` and joined in ``disconnect()``, owns the
port's input: it files replies by sequence number and motion reports by the seq of their command.
Lines that arrive damaged, or a rig that reports a damaged command, make the client resend the same
command with the same seq; the firmware answers a repeated seq from its cache instead of running
the command twice (STOP excepted: it always halts). While a motion runs, the client polls STATUS,
which keeps the firmware's host-silence watchdog fed and also finds the end of a motion whose
report was lost.

Over 500 lines on purpose: the host half of one wire protocol (framing, sequence numbers, retries,
the motion state machine) kept beside each other, as the firmware keeps its half in one file.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meld_core.hardware import rig_protocol as proto

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Errors


class ResetRigError(Exception):
    """Base of every reset-rig failure. ``code`` is the protocol error code when the rig sent one."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class RigConnectionError(ResetRigError):
    """The port cannot be opened, went away, or the rig rebooted under us."""


class RigTimeoutError(ResetRigError):
    """No reply or no end of motion within the deadline."""


class RigProtocolError(ResetRigError):
    """Damaged lines beyond the retries, a version mismatch, or a command the rig rejected as malformed."""


class RigNotHomedError(ResetRigError):
    """A move was asked before homing, or the home position was lost."""


class RigLimitError(ResetRigError):
    """A target outside the soft limits, or a limit switch hit during a move."""


class RigBusyError(ResetRigError):
    """The rig is still moving."""


class RigAbortedError(ResetRigError):
    """A motion ended early: STOP, the host-silence watchdog, or a failed homing."""


class RigEStopError(RigAbortedError):
    """The emergency stop is pressed (or its wire is broken)."""


_ERROR_CLASSES: dict[str, type[ResetRigError]] = {
    "BAD_CHECKSUM": RigProtocolError,
    "LINE_TOO_LONG": RigProtocolError,
    "BAD_SYNTAX": RigProtocolError,
    "UNKNOWN_COMMAND": RigProtocolError,
    "BAD_ARGUMENT": RigProtocolError,
    "VERSION_MISMATCH": RigProtocolError,
    "NOT_HOMED": RigNotHomedError,
    "OUT_OF_RANGE": RigLimitError,
    "BUSY": RigBusyError,
    "LIMIT_HIT": RigLimitError,
    "WATCHDOG": RigAbortedError,
    "HOME_FAILED": RigAbortedError,
    "ESTOP": RigEStopError,
    "STOPPED": RigAbortedError,
}


def error_for_code(code: int, port: str, what: str) -> ResetRigError:
    """The typed exception for a protocol error code, with its meaning and the next step."""
    spec = proto.ERRORS.get(code)
    if spec is None:
        return RigProtocolError(
            f"reset rig on {port}: {what} failed with unknown error code {code}; "
            "flash the firmware from this checkout (make -C hardware/reset_rig flash)", code)
    cls = _ERROR_CLASSES.get(spec.name, RigProtocolError)
    return cls(f"reset rig on {port}: {what} failed: {spec.name} ({spec.meaning}); next: {spec.action}", code)


# ---------------------------------------------------------------------------------------------
# Configuration and state


def _pair(value: Any, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be two finite numbers (low, high) with low < high, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class ResetRigConfig:
    """Everything the client needs; CONFIG sends the rig-side part on every connect."""

    port: str = "/dev/ttyACM0"  # serial device of the Arduino (Uno: ttyACM*, Nano clones: ttyUSB*)
    baudrate: int = proto.BAUD  # must match the firmware
    steps_per_deg: float = 26.667  # rotation calibration: 200 steps x 16 microsteps x 3:1 gear / 360
    steps_per_mm: float = 80.0  # translation calibration: 200 x 16 / 40 mm per pulley turn (GT2, 20 T)
    rotation_limits_deg: tuple[float, float] = (-8.5, 8.5)  # soft limits around 0; tasks use +-8 deg
    translation_limits_mm: tuple[float, float] = (-10.5, 10.5)  # soft limits around 0; tasks use +-10 mm
    rotation_home_deg: float = -9.5  # where the rotation switch releases (below the soft limits)
    translation_home_mm: float = -11.5  # where the translation switch releases
    watchdog_s: float = 1.0  # the firmware halts a motion after this much host silence
    poll_interval_s: float = 0.2  # STATUS poll period during motions (feeds the watchdog)
    reply_timeout_s: float = 1.0  # wait for one reply before resending
    retries: int = 3  # resends of one command after damaged lines or a lost reply
    connect_timeout_s: float = 6.0  # handshake deadline (an Uno resets when the port opens: ~2 s)
    home_timeout_s: float = 60.0  # default deadline of home()
    move_timeout_s: float = 20.0  # default deadline of move_to()

    def __post_init__(self) -> None:
        if not self.port:
            raise ValueError("port must name a serial device, e.g. /dev/ttyACM0")
        if self.baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {self.baudrate}")
        for name in ("steps_per_deg", "steps_per_mm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 1.0 <= value <= 1000.0):
                raise ValueError(f"{name} must be within 1..1000 (firmware bound), got {value}")
        object.__setattr__(self, "rotation_limits_deg",
                           _pair(self.rotation_limits_deg, "rotation_limits_deg"))
        object.__setattr__(self, "translation_limits_mm",
                           _pair(self.translation_limits_mm, "translation_limits_mm"))
        for name in ("rotation_limits_deg", "translation_limits_mm"):
            lo, hi = getattr(self, name)
            if not lo <= 0.0 <= hi:
                raise ValueError(f"{name} must contain 0, where HOME leaves the rig "
                                 f"(the firmware refuses such a CONFIG), got {(lo, hi)!r}")
        if not self.rotation_home_deg < self.rotation_limits_deg[0]:
            raise ValueError("rotation_home_deg must lie below rotation_limits_deg "
                             "(the switch sits past the range)")
        if not self.translation_home_mm < self.translation_limits_mm[0]:
            raise ValueError("translation_home_mm must lie below translation_limits_mm")
        if not 0.1 <= self.watchdog_s <= 60.0:
            raise ValueError(f"watchdog_s must be within 0.1..60 s, got {self.watchdog_s}")
        if not 0.0 < self.poll_interval_s <= self.watchdog_s / 3:
            raise ValueError("poll_interval_s must be positive and at most watchdog_s / 3, "
                             "or the watchdog trips during every motion")
        for name in ("reply_timeout_s", "connect_timeout_s", "home_timeout_s", "move_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")

    def config_args(self) -> tuple[int, ...]:
        """The CONFIG command's arguments in protocol units."""
        return (
            round(self.steps_per_deg * 1000), round(self.steps_per_mm * 1000),
            round(self.rotation_limits_deg[0] * 1000), round(self.rotation_limits_deg[1] * 1000),
            round(self.translation_limits_mm[0] * 1000), round(self.translation_limits_mm[1] * 1000),
            round(self.rotation_home_deg * 1000), round(self.translation_home_mm * 1000),
            round(self.watchdog_s * 1000),
        )


@dataclass(frozen=True)
class RigState:
    """What the rig reported in one STATUS reply."""

    state: str  # IDLE, HOMING, MOVING or ESTOP
    homed: bool  # a MOVE is accepted only when homed
    rotation_deg: float  # router rotation, degrees (0 = nominal)
    translation_mm: float  # router position on the rail, mm (0 = nominal)
    rotation_steps: int  # the firmware's step counters
    translation_steps: int
    estop: bool  # emergency stop pressed (drivers off)
    last_motion_seq: int  # seq of the current or last HOME/MOVE
    error: str | None  # how the last motion ended when it did not reach its target (e.g. "WATCHDOG")
    firmware_version: str  # from the handshake

    @property
    def moving(self) -> bool:
        return self.state in ("HOMING", "MOVING")


def _open_serial(port: str, baudrate: int) -> Any:
    import serial

    return serial.Serial(port, baudrate, timeout=0.05, write_timeout=1.0, exclusive=True)


# ---------------------------------------------------------------------------------------------
# Client


class ResetRig:
    """The reset rig over USB serial. Construct, then ``connect()`` (or use ``with``)."""

    def __init__(self, config: ResetRigConfig, serial_factory: Callable[[str, int], Any] | None = None):
        self.config = config
        self._serial_factory = serial_factory or _open_serial
        self._serial: Any = None
        self._reader: threading.Thread | None = None
        self._stop_reader = threading.Event()
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._replies: dict[int, proto.Reply] = {}
        self._motion_ends: dict[int, proto.Event] = {}
        self._damaged = 0  # damaged incoming lines plus seq-0 errors from the rig
        self._fault: ResetRigError | None = None
        self._seq = 0
        self.firmware_version = ""

    # -- device interface ------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._serial is not None and self._fault is None

    def connect(self) -> None:
        """Open the port, handshake (protocol version), send the calibration and limits.

        When the new settings clear the rig's home (another calibration or switch position, or the
        rig stands outside the new soft limits), it logs a warning; ``status().homed`` is then
        False and a move raises RigNotHomedError until ``home()``."""
        if self._serial is not None:
            raise RigConnectionError(f"reset rig on {self.config.port} is already connected; "
                                     "call disconnect() first")
        try:
            self._serial = self._serial_factory(self.config.port, self.config.baudrate)
        except Exception as exc:  # serial.SerialException, OSError
            raise RigConnectionError(
                f"cannot open reset rig port {self.config.port}: {exc}; check the USB cable, the port "
                "name (ls /dev/ttyACM* /dev/ttyUSB*) and that you are in the dialout group") from exc
        reset = getattr(self._serial, "reset_input_buffer", None)
        if reset is not None:
            reset()  # drop whatever an earlier session left unread
        self._fault = None
        self.firmware_version = ""
        self._replies.clear()
        self._motion_ends.clear()
        self._seq = random.randint(1, proto.MAX_SEQ - 1)  # never collides with a previous session's last seq
        self._stop_reader.clear()
        self._reader = threading.Thread(target=self._read_loop, name="reset-rig-reader", daemon=True)
        self._reader.start()
        try:
            self._handshake()
            self._configure()
        except BaseException:
            self._close()
            raise
        log.info("reset rig on %s connected (firmware %s)", self.config.port, self.firmware_version)

    def disconnect(self) -> None:
        """Stop any motion (drivers keep holding) and close the port. Safe to call twice."""
        if self._serial is None:
            return
        if self._fault is None:
            try:
                self.request("STOP", timeout_s=min(2.0, self.config.reply_timeout_s * 2))
            except ResetRigError as exc:
                log.warning("reset rig on %s: STOP on disconnect failed (%s); the firmware watchdog "
                            "halts any motion within %.1f s", self.config.port, exc, self.config.watchdog_s)
        self._close()
        log.info("reset rig on %s disconnected", self.config.port)

    def __enter__(self) -> ResetRig:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- commands --------------------------------------------------------------------------

    def home(self, timeout_s: float | None = None) -> RigState:
        """Find both switches and move to 0 deg / 0 mm; returns the state once the rig reports DONE."""
        timeout = self.config.home_timeout_s if timeout_s is None else timeout_s
        reply = self.request("HOME")
        self._wait_motion(reply.seq, "HOME", timeout)
        return self.status()

    def move_to(self, rotation_deg: float, translation_mm: float, timeout_s: float | None = None) -> RigState:
        """Move to an absolute pose; returns the state once the rig reports DONE, raises otherwise."""
        timeout = self.config.move_timeout_s if timeout_s is None else timeout_s
        for value, (lo, hi), name, unit in (
            (rotation_deg, self.config.rotation_limits_deg, "rotation", "deg"),
            (translation_mm, self.config.translation_limits_mm, "translation", "mm"),
        ):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise RigLimitError(f"reset rig: {name} {value} {unit} is outside the soft limits "
                                    f"[{lo}, {hi}] {unit}; ask for a pose inside them",
                                    proto.ERROR_CODES["OUT_OF_RANGE"])
        what = f"MOVE to {rotation_deg:.3f} deg, {translation_mm:.3f} mm"
        reply = self.request("MOVE", round(rotation_deg * 1000), round(translation_mm * 1000))
        self._wait_motion(reply.seq, what, timeout)
        return self.status()

    def stop(self) -> RigState:
        """Halt at once. A motion waiting in another thread raises RigAbortedError (STOPPED)."""
        self.request("STOP")
        return self.status()

    def status(self) -> RigState:
        reply = self.request("STATUS")
        return self._parse_status(reply)

    def request(self, command: str, *args: int, timeout_s: float | None = None) -> proto.Reply:
        """Send one command and return its OK reply; resends on damage, raises the typed error on ERR.

        Low level: it does not check soft limits or wait for motions (home/move_to do)."""
        self._check_usable()
        with self._cond:
            self._seq = self._seq % proto.MAX_SEQ + 1
            seq = self._seq
        line = proto.encode_command(seq, command, *args)
        total_s = self.config.reply_timeout_s * (self.config.retries + 1) if timeout_s is None else timeout_s
        deadline = time.monotonic() + total_s
        damaged_seen = 0
        for attempt in range(self.config.retries + 1):
            with self._cond:
                damaged_before = self._damaged
            self._write(line)
            attempt_end = min(deadline, time.monotonic() + self.config.reply_timeout_s)
            with self._cond:
                while True:
                    if self._fault is not None:
                        raise self._fault
                    reply = self._replies.pop(seq, None)
                    if reply is not None:
                        if reply.ok:
                            return reply
                        raise error_for_code(reply.code, self.config.port, command)
                    if self._damaged != damaged_before:
                        damaged_before = self._damaged
                        damaged_seen += 1
                        if attempt < self.config.retries:
                            break  # our line or its reply may have been damaged: resend the same seq
                        # no resend left: keep waiting, the reply may still be on its way
                    remaining = attempt_end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if time.monotonic() >= deadline:
                break
            log.debug("reset rig: resending %s seq %d (attempt %d)", command, seq, attempt + 2)
        if damaged_seen:
            raise RigProtocolError(
                f"reset rig on {self.config.port}: {command} got only damaged lines after "
                f"{self.config.retries + 1} attempts; check the USB cable, the baud rate "
                f"({self.config.baudrate}) and that nothing else writes to the port",
                proto.ERROR_CODES["BAD_CHECKSUM"])
        raise RigTimeoutError(
            f"reset rig on {self.config.port}: no reply to {command} within "
            f"{total_s:.1f} s; "
            "check that the rig is powered, the firmware is flashed (make -C hardware/reset_rig flash) "
            "and the port is right")

    # -- internals -------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._serial is None:
            raise RigConnectionError(
                f"reset rig on {self.config.port} is not connected; call connect() first")
        if self._fault is not None:
            raise self._fault

    def _handshake(self) -> None:
        deadline = time.monotonic() + self.config.connect_timeout_s
        last: ResetRigError | None = None
        while time.monotonic() < deadline:
            try:
                reply = self.request("HELLO", proto.PROTOCOL_VERSION,
                                     timeout_s=min(0.5, max(0.05, deadline - time.monotonic())))
            except (RigTimeoutError, RigProtocolError) as exc:
                if exc.code == proto.ERROR_CODES["VERSION_MISMATCH"]:
                    raise
                last = exc  # the board may still be booting (an Uno resets when the port opens)
                continue
            if len(reply.fields) != 2 or reply.fields[0] != str(proto.PROTOCOL_VERSION):
                raise RigProtocolError(
                    f"reset rig on {self.config.port}: the firmware answered HELLO with {reply.fields!r}, "
                    f"not protocol {proto.PROTOCOL_VERSION}; flash the firmware from this checkout: "
                    "make -C hardware/reset_rig flash", proto.ERROR_CODES["VERSION_MISMATCH"])
            self.firmware_version = reply.fields[1]
            return
        raise RigTimeoutError(
            f"reset rig on {self.config.port}: no handshake within {self.config.connect_timeout_s:.1f} s "
            f"({last}); check that the board runs the reset-rig firmware "
            "(make -C hardware/reset_rig flash PORT=...) and that the port is right")

    def _configure(self) -> None:
        reply = self.request("CONFIG", *self.config.config_args())
        if reply.fields not in (("0",), ("1",)):
            raise RigProtocolError(f"reset rig on {self.config.port}: malformed CONFIG reply "
                                   f"{reply.fields!r}; flash the firmware from this checkout")
        if reply.fields[0] == "1":
            state = self.status()
            log.warning("reset rig on %s: CONFIG cleared the home: the calibration or a switch position "
                        "changed, or the rig (at %.3f deg, %.3f mm) stands outside the new soft limits "
                        "%s deg / %s mm; home() before the next move", self.config.port, state.rotation_deg,
                        state.translation_mm, self.config.rotation_limits_deg,
                        self.config.translation_limits_mm)

    def _wait_motion(self, seq: int, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        next_poll = time.monotonic() + self.config.poll_interval_s
        while True:
            with self._cond:
                if self._fault is not None:
                    raise self._fault
                end = self._motion_ends.pop(seq, None)
                if end is None:
                    wait = min(next_poll, deadline) - time.monotonic()
                    if wait > 0:
                        self._cond.wait(wait)
                        end = self._motion_ends.pop(seq, None)
            if end is not None:
                if end.name == "DONE":
                    return
                raise error_for_code(int(end.fields[1]), self.config.port, what)
            now = time.monotonic()
            if now >= deadline:
                try:
                    self.request("STOP")
                except ResetRigError as exc:
                    log.warning("reset rig: STOP after a timeout failed: %s", exc)
                raise RigTimeoutError(
                    f"reset rig on {self.config.port}: {what} did not finish within {timeout_s:.1f} s; "
                    "the rig was stopped; check for an obstruction or a stalled motor, then home again")
            if now >= next_poll:
                next_poll = now + self.config.poll_interval_s
                state = self._parse_status(self.request("STATUS"))  # also feeds the watchdog
                if state.last_motion_seq == seq and not state.moving:
                    # The motion ended but its report was lost on the wire.
                    if state.error is None and state.state != "ESTOP":
                        return
                    code = proto.ERROR_CODES[state.error] if state.error else proto.ERROR_CODES["ESTOP"]
                    raise error_for_code(code, self.config.port, what)

    def _parse_status(self, reply: proto.Reply) -> RigState:
        f = reply.fields
        if len(f) != len(proto.COMMANDS["STATUS"].reply) or f[0] not in proto.STATES:
            raise RigProtocolError(f"reset rig on {self.config.port}: malformed STATUS reply {f!r}; "
                                   "flash the firmware from this checkout")
        try:
            code = int(f[7])
            return RigState(
                state=f[0], homed=f[1] == "1",
                rotation_deg=int(f[2]) / 1000.0, translation_mm=int(f[3]) / 1000.0,
                rotation_steps=int(f[4]), translation_steps=int(f[5]),
                last_motion_seq=int(f[6]),
                error=None if code == 0 else proto.ERRORS[code].name if code in proto.ERRORS else str(code),
                estop=f[8] == "1", firmware_version=self.firmware_version,
            )
        except ValueError as exc:
            raise RigProtocolError(f"reset rig on {self.config.port}: malformed STATUS reply {f!r}") from exc

    def _write(self, line: bytes) -> None:
        try:
            with self._write_lock:
                self._serial.write(line)
                self._serial.flush()
        except Exception as exc:
            fault = RigConnectionError(f"reset rig on {self.config.port}: write failed ({exc}); "
                                       "check the USB cable, then reconnect and home")
            with self._cond:
                self._fault = fault
                self._cond.notify_all()
            raise fault from exc

    def _read_loop(self) -> None:
        buf = b""
        while not self._stop_reader.is_set():
            try:
                chunk = self._serial.read(max(1, getattr(self._serial, "in_waiting", 0) or 1))
            except Exception as exc:
                if self._stop_reader.is_set():
                    return
                with self._cond:
                    self._fault = RigConnectionError(
                        f"reset rig on {self.config.port}: read failed ({exc}); check the USB cable, "
                        "then reconnect and home")
                    self._cond.notify_all()
                return
            if not chunk:
                continue
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) > 4 * proto.MAX_LINE:  # no newline for far too long: noise
                buf = b""
                lines.append(b"\xff")
            for raw in lines:
                if raw.strip(b"\r"):
                    self._dispatch(raw)

    def _dispatch(self, raw: bytes) -> None:
        try:
            msg = proto.parse_line(raw)
        except proto.FrameError as exc:
            log.debug("reset rig: damaged line: %s", exc)
            with self._cond:
                self._damaged += 1
                self._cond.notify_all()
            return
        with self._cond:
            if isinstance(msg, proto.Reply):
                if msg.seq == 0:  # the rig could not trust a line (ours, probably): resend
                    log.debug("reset rig: rig reported %s on an untrusted line", proto.ERRORS.get(msg.code))
                    self._damaged += 1
                else:
                    self._replies[msg.seq] = msg
                    while len(self._replies) > 64:
                        self._replies.pop(next(iter(self._replies)))
            elif msg.name in ("DONE", "ABORT"):
                self._motion_ends[int(msg.fields[0])] = msg
                while len(self._motion_ends) > 64:
                    self._motion_ends.pop(next(iter(self._motion_ends)))
            elif msg.name == "BOOT" and self.firmware_version:
                self._fault = RigConnectionError(
                    f"reset rig on {self.config.port} rebooted (power dip or reset); it lost its home "
                    "position: reconnect and home again")
            elif msg.name == "ESTOP":
                log.warning("reset rig: emergency stop %s", "pressed" if msg.fields[0] == "1" else "released")
            self._cond.notify_all()

    def _close(self) -> None:
        self._stop_reader.set()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            if self._reader.is_alive():
                log.warning("reset rig: reader thread did not stop within 2 s")
            self._reader = None
        try:
            self._serial.close()
        except Exception as exc:  # closing a vanished device
            log.debug("reset rig: close failed: %s", exc)
        self._serial = None
