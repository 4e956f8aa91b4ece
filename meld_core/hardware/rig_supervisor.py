"""The reset-rig node's state machine, without ROS.

`reset_rig_node` is a ROS 2 lifecycle node; each transition maps onto one call here:

    configure  -> open the serial port (client.connect(): port, handshake)      UNCONFIGURED -> INACTIVE
    activate   -> home both axes (client.home(), with a deadline)                INACTIVE -> IDLE
    deactivate -> stop motion (client.stop())                                    IDLE/MOVING -> INACTIVE
    cleanup    -> close the port (client.disconnect())                          INACTIVE -> UNCONFIGURED
    shutdown   -> stop + close, from any state

While active, goals (rotation in degrees, translation in mm, checked against the configured soft
limits) move the rig and block until it reports arrival or the deadline passes; `stop()` may be
called from another thread at any time and latches STOPPED until the next home. A failure moves to
ERROR (the lifecycle node then reports it and refuses goals until it is re-activated).

Also here: the mapping between a rig pose and a geometry_msgs/Pose (translation along the rail
= position.x in metres, rotation about the vertical axis = yaw of the orientation), so the node's
message conversion is tested without ROS.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from meld_core.hardware.diagnostics import DiagLevel, DiagStatus

log = logging.getLogger(__name__)


class RigSupervisorError(RuntimeError):
    """A goal or command the rig cannot accept in its current state."""


@runtime_checkable
class RigClient(Protocol):
    """The calls the supervisor makes on a reset-rig client (real serial client or fake)."""

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def home(self, timeout_s: float) -> None: ...

    def move_to(self, rotation_deg: float, translation_mm: float, timeout_s: float) -> Any: ...

    def stop(self) -> Any: ...

    def status(self) -> Any:
        """An object with `rotation_deg` and `translation_mm` (meld_core.hardware.reset_rig.RigState)."""


@dataclass(frozen=True)
class RigNodeConfig:
    """Parameters of the reset-rig node."""

    port: str = "/dev/ttyACM0"  # serial port of the Arduino (a udev symlink such as /dev/meld_rig is best)
    baud: int = 115200  # serial baud rate (the firmware's rate)
    rotation_limit_deg: float = 8.0  # goals must satisfy |rotation| <= this, degrees
    translation_limit_mm: float = 10.0  # goals must satisfy |translation| <= this, millimetres
    connect_timeout_s: float = 5.0  # deadline for opening the port and the version handshake
    home_timeout_s: float = 60.0  # deadline for homing both axes
    move_timeout_s: float = 30.0  # deadline for one goal
    state_hz: float = 10.0  # rate of the rig joint-state and status publication
    frame_id: str = "rig_base"  # frame_id of published rig poses
    driver: str = "serial"  # "serial" (the Arduino on `port`) or "fake" (an in-process rig, to try the graph)
    autostart: bool = True  # configure and activate at start-up (false: use `ros2 lifecycle set`)

    def __post_init__(self) -> None:
        if not self.port:
            raise ValueError("RigNodeConfig.port must name a serial port, e.g. /dev/ttyACM0")
        if self.driver not in ("serial", "fake"):
            raise ValueError(f"RigNodeConfig.driver must be 'serial' or 'fake', got {self.driver!r}")
        if self.baud <= 0:
            raise ValueError("RigNodeConfig.baud must be > 0")
        for name in (
            "rotation_limit_deg",
            "translation_limit_mm",
            "connect_timeout_s",
            "home_timeout_s",
            "move_timeout_s",
            "state_hz",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"RigNodeConfig.{name} must be > 0, got {getattr(self, name)}")


class RigNodeState(str, enum.Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    HOMING = "homing"
    IDLE = "idle"
    MOVING = "moving"
    STOPPED = "stopped"
    ERROR = "error"


def pose_from_rig(
    rotation_deg: float, translation_mm: float
) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """((x, y, z) metres, (qx, qy, qz, qw)) of a rig pose: x along the rail, yaw about z."""
    half = math.radians(rotation_deg) / 2.0
    return (translation_mm / 1000.0, 0.0, 0.0), (0.0, 0.0, math.sin(half), math.cos(half))


def rig_from_pose(
    position: tuple[float, float, float], orientation: tuple[float, float, float, float]
) -> tuple[float, float]:
    """(rotation_deg, translation_mm) from a pose; raises ValueError for anything but x + yaw."""
    x, y, z = position
    qx, qy, qz, qw = orientation
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    if not all(math.isfinite(v) for v in (x, y, z, qx, qy, qz, qw)) or norm < 1e-6:
        raise ValueError("rig goal pose must be finite with a non-zero quaternion")
    qx, qy, qz, qw = qx / norm, qy / norm, qz / norm, qw / norm
    if abs(y) > 1e-6 or abs(z) > 1e-6 or abs(qx) > 1e-6 or abs(qy) > 1e-6:
        raise ValueError(
            "the rig moves along x and rotates about z only: position.y, position.z, "
            "orientation.x and orientation.y must be 0"
        )
    yaw = 2.0 * math.atan2(qz, qw)
    yaw = math.atan2(math.sin(yaw), math.cos(yaw))
    return math.degrees(yaw), x * 1000.0


class RigSupervisor:
    """Lifecycle transitions and goals -> RigClient calls (see the module docstring)."""

    def __init__(self, config: RigNodeConfig, client_factory: Callable[[RigNodeConfig], RigClient]) -> None:
        self.config = config
        self._factory = client_factory
        self._client: RigClient | None = None
        self._lock = threading.Lock()  # guards state; the client is called outside it so stop() can interrupt
        self.state = RigNodeState.UNCONFIGURED
        self.goal: tuple[float, float] | None = None
        self.last_error = ""
        self.moves = 0
        self.failures = 0
        self.stops = 0
        self.goal_seq = 0  # increases with every accepted goal; reported in the status

    # ---------------------------------------------------------------- lifecycle
    def configure(self) -> None:
        with self._lock:
            self._require(RigNodeState.UNCONFIGURED)
        try:
            client = self._factory(self.config)
            client.connect()
        except Exception as exc:
            self._error(f"could not open the reset rig on {self.config.port}: {exc}")
            with self._lock:
                self.state = (
                    RigNodeState.UNCONFIGURED
                )  # the lifecycle node is back in unconfigured: retry allowed
            raise
        with self._lock:
            self._client = client
            self.state = RigNodeState.INACTIVE

    def activate(self) -> None:
        with self._lock:
            self._require(RigNodeState.INACTIVE, RigNodeState.STOPPED)
            self.state = RigNodeState.HOMING
        self._run(lambda c: c.home(self.config.home_timeout_s), "homing")

    def deactivate(self) -> None:
        client = self._client
        if client is not None:
            self._safe_stop(client)
        with self._lock:
            self.state = RigNodeState.INACTIVE if client is not None else RigNodeState.UNCONFIGURED

    def cleanup(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
        with self._lock:
            self.state = RigNodeState.UNCONFIGURED

    def shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._safe_stop(client)
            try:
                client.disconnect()
            except Exception as exc:  # shutting down anyway; report and go on
                log.warning("reset rig: disconnect failed during shutdown: %s", exc)
        with self._lock:
            self.state = RigNodeState.UNCONFIGURED

    # ---------------------------------------------------------------- commands
    def check_goal(self, rotation_deg: float, translation_mm: float) -> None:
        cfg = self.config
        if not (math.isfinite(rotation_deg) and math.isfinite(translation_mm)):
            raise RigSupervisorError("rig goal must be finite")
        if abs(rotation_deg) > cfg.rotation_limit_deg + 1e-9:
            raise RigSupervisorError(
                f"rig rotation {rotation_deg:.2f} deg outside +-{cfg.rotation_limit_deg} deg"
            )
        if abs(translation_mm) > cfg.translation_limit_mm + 1e-9:
            raise RigSupervisorError(
                f"rig translation {translation_mm:.2f} mm outside +-{cfg.translation_limit_mm} mm"
            )

    def move(self, rotation_deg: float, translation_mm: float) -> None:
        """Move to a goal and block until there (deadline: move_timeout_s)."""
        self.check_goal(rotation_deg, translation_mm)
        with self._lock:
            if self.state == RigNodeState.STOPPED:
                raise RigSupervisorError("reset rig is stopped; call the home service first")
            self._require(RigNodeState.IDLE)
            self.state = RigNodeState.MOVING
            self.goal = (rotation_deg, translation_mm)
            self.goal_seq += 1
        self._run(lambda c: c.move_to(rotation_deg, translation_mm, self.config.move_timeout_s), "move")
        self.moves += 1

    def home(self) -> None:
        with self._lock:
            self._require(RigNodeState.IDLE, RigNodeState.STOPPED, RigNodeState.ERROR)
            self.state = RigNodeState.HOMING
        self._run(lambda c: c.home(self.config.home_timeout_s), "homing")

    def stop(self) -> None:
        """Stop motion now (any thread); latches STOPPED until the next home."""
        client = self._client
        if client is None:
            raise RigSupervisorError("reset rig is not configured (no port open)")
        # STOPPED before the firmware is asked: it reports the aborted motion before it acknowledges
        # STOP, and the moving thread must then see a stop, not a failure.
        with self._lock:
            self.stops += 1
            if self.state in (RigNodeState.IDLE, RigNodeState.MOVING, RigNodeState.HOMING):
                self.state = RigNodeState.STOPPED
        self._safe_stop(client)

    def position(self) -> tuple[float, float] | None:
        """(rotation_deg, translation_mm) as the rig reports it, or None when no port is open."""
        client = self._client
        if client is None:
            return None
        state = client.status()
        return float(state.rotation_deg), float(state.translation_mm)

    # ---------------------------------------------------------------- helpers
    def _require(self, *states: RigNodeState) -> None:
        if self.state not in states:
            raise RigSupervisorError(
                f"reset rig is {self.state.value}; this needs {' or '.join(s.value for s in states)}"
            )

    def _run(self, call: Callable[[RigClient], None], what: str) -> None:
        client = self._client
        if client is None:
            raise RigSupervisorError("reset rig is not configured (no port open)")
        started = time.monotonic()
        try:
            call(client)
        except Exception as exc:
            with self._lock:
                stopped = self.state == RigNodeState.STOPPED
            if stopped:
                raise RigSupervisorError(f"reset rig {what} interrupted by stop") from exc
            self._error(f"reset rig {what} failed: {exc}")
            raise
        with self._lock:
            if self.state == RigNodeState.STOPPED:
                raise RigSupervisorError(f"reset rig {what} interrupted by stop")
            self.state = RigNodeState.IDLE
        log.info("reset rig: %s done in %.1f s", what, time.monotonic() - started)

    def _error(self, message: str) -> None:
        with self._lock:
            self.state = RigNodeState.ERROR
            self.last_error = message
            self.failures += 1
        log.error("%s", message)

    def _safe_stop(self, client: RigClient) -> None:
        try:
            client.stop()
        except Exception as exc:
            self._error(f"reset rig stop failed: {exc}; cut the rig's power if it is still moving")
            raise

    def status(self) -> DiagStatus:
        values = {
            "state": self.state.value,
            "port": self.config.port,
            "moves": str(self.moves),
            "failures": str(self.failures),
            "stops": str(self.stops),
            "goal_seq": str(self.goal_seq),
            "last_error": self.last_error,
        }
        if self.goal is not None:
            values["goal_rotation_deg"] = f"{self.goal[0]:.3f}"
            values["goal_translation_mm"] = f"{self.goal[1]:.3f}"
        if self.state == RigNodeState.ERROR or (self.state == RigNodeState.UNCONFIGURED and self.last_error):
            return DiagStatus(DiagLevel.ERROR, self.last_error or "error", values)
        if self.state in (RigNodeState.STOPPED, RigNodeState.UNCONFIGURED, RigNodeState.INACTIVE):
            return DiagStatus(DiagLevel.WARN, self.state.value, values)
        return DiagStatus(DiagLevel.OK, self.state.value, values)


def make_rig_client(config: RigNodeConfig) -> RigClient:
    """The reset-rig client the node configures: the serial ResetRig, or the in-process fake."""
    from meld_core.hardware.reset_rig import ResetRig, ResetRigConfig

    rig_config = ResetRigConfig(
        port=config.port if config.driver == "serial" else "fake",
        baudrate=config.baud,
        connect_timeout_s=config.connect_timeout_s,
        home_timeout_s=config.home_timeout_s,
        move_timeout_s=config.move_timeout_s,
    )
    if config.driver == "fake":
        from meld_core.testing.fake_reset_rig import FakeResetRig

        return FakeResetRig(rig_config, motion_time_s=0.5)
    return ResetRig(rig_config)
