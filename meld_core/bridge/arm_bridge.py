"""The arm bridge: everything `arm_node` does, without ROS.

The ROS arm node receives joint-velocity commands (rad/s) on `/meld/arm/velocity_command` and
forwards them to interbotix xs_sdk's `/<robot>/commands/joint_group`. xs_sdk has no command
timeout, no joint-limit check and no NaN check (the servos keep the last Goal_Velocity forever),
so this class owns:

- the velocity-mode request for `set_operating_modes` (commands are refused until it succeeded);
- the safety filter (`meld_core.robot.safety.SafetyFilter`, built from the robot profile: the same
  limits and workspace box the simulation trains under) applied on every command AND re-applied
  at `tick_hz` to the held command against the newest joint state, so a joint that approaches its
  limit between two 3.3 Hz commands is braked in time;
- a deadman: when no valid command came within `deadman_period_s`, zeros are sent (once per trip);
  a non-finite command is not valid: it stops the arm at once and does not feed the deadman;
- stale joint states (no measurement within `joint_state_timeout_s`) also force zeros;
- "home" (a proportional velocity servo to `home_positions`, also through the safety filter) and a
  latched "stop" (zeros until the next home);
- counters for diagnostics (commands, clamps by rule, deadman trips, stale-state stops).

`tick(now)` returns the velocity vector to publish, or None when nothing needs sending: a command
is sent when a fresh command arrived, or when the filtered output changed (brake, deadman, stop).
The class is thread-safe: ROS callbacks from several callback groups may call it concurrently.

Time: every method takes `now` from the caller's clock (`now_seconds(node)`: ROS time, i.e. wall
time, or the simulation's clock under use_sim_time; the simulated graph's virtual clock in CI).
The deadman, the joint-state freshness and the homing timeout all run on that clock, so a
simulation slower or faster than real time keeps the same behaviour in its own time, and each is a
`meld_core.robot.safety.Deadman`: a clock that steps backwards or a non-finite `now` only ever
stops the arm sooner, never later. (A wall-clock `time.monotonic()` would be immune to steps too,
but would trip the deadman between the simulation's 3.3 Hz commands whenever the simulation runs
slower than real time, and never trip it when it runs faster.)

Stop bound: the deadman is checked at every tick, so zeros are sent at most
`deadman_period_s + 1 / tick_hz` after the last valid command (`ArmBridgeConfig.stop_bound_s`,
0.45 + 0.05 = 0.5 s by default), on the caller's clock.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from meld_core.bridge import names
from meld_core.hardware.diagnostics import DiagLevel, DiagStatus
from meld_core.robot.profile import RobotProfile
from meld_core.robot.safety import Deadman

log = logging.getLogger(__name__)


class ArmBridgeError(RuntimeError):
    """A command or joint state does not fit the arm (wrong joints or lengths)."""


@dataclass(frozen=True)
class ArmBridgeConfig:
    """Parameters of the arm bridge (one ROS parameter per field in arm_node). The arm's facts
    (joints, limits, home pose, workspace box, command hold time) are not here: they come from the
    robot profile (`meld_core.robot.profile`), the one the simulation uses."""

    robot_name: str = "wx200"  # xs_sdk namespace: its topics and services live under /<robot_name>/
    group: str = "arm"  # xs_sdk joint group that is put in velocity mode and commanded
    command_topic: str = names.ARM_COMMAND  # incoming sensor_msgs/JointState (velocity, rad/s), relative
    deadman_period_s: float = 0.45  # send zeros when no valid command came within this period
    tick_hz: float = 20.0  # rate at which the held command is re-filtered and the deadman checked
    joint_state_timeout_s: float = 0.25  # older joint states count as missing: zeros are sent
    profile_acceleration: int = 0  # velocity-mode Profile_Acceleration, 214.577 rev/min^2 units (0 = none)
    home_gain: float = 1.5  # proportional gain of the homing velocity servo, 1/s
    home_max_speed: float = 0.8  # largest joint speed while homing, rad/s
    home_tolerance: float = 0.02  # homing ends when every joint is this close to home, rad
    home_timeout_s: float = 20.0  # homing fails (and stops the arm) after this long
    mode_service_timeout_s: float = 30.0  # how long to wait for xs_sdk's set_operating_modes service
    diagnostics_period_s: float = 1.0  # period of the /diagnostics status
    temperature_poll_s: float = 0.0  # read Present_Temperature via get_motor_registers every N s (0 = off)

    def __post_init__(self) -> None:
        if not self.robot_name or not self.group:
            raise ValueError("ArmBridgeConfig.robot_name and .group must not be empty")
        for name in ("deadman_period_s", "tick_hz", "joint_state_timeout_s", "home_gain", "home_max_speed",
                     "home_tolerance", "home_timeout_s", "mode_service_timeout_s", "diagnostics_period_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ArmBridgeConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.deadman_period_s < 1.0 / self.tick_hz:
            raise ValueError("ArmBridgeConfig.deadman_period_s must be at least one tick (1 / tick_hz)")
        if self.profile_acceleration < 0 or self.temperature_poll_s < 0:
            raise ValueError("ArmBridgeConfig.profile_acceleration and temperature_poll_s must be >= 0")

    @property
    def stop_bound_s(self) -> float:
        """Longest time from the last valid command to zeros being sent: the deadman period plus the
        tick that notices it expired (0.5 s with the defaults)."""
        return self.deadman_period_s + 1.0 / self.tick_hz


class SafetyFilterLike(Protocol):
    def filter(self, q: np.ndarray, qdot: np.ndarray) -> Any:
        """Return an object with `.velocity` (np.ndarray) and `.events` (tuple[str, ...])."""


class Mode(str, enum.Enum):
    WAITING_FOR_MODE = "waiting_for_velocity_mode"
    IDLE = "idle"
    COMMAND = "command"
    HOMING = "homing"
    STOPPED = "stopped"


def reorder(names: Sequence[str], values: Sequence[float], wanted: Sequence[str], what: str) -> np.ndarray:
    """`values` (named by `names`) in the order of `wanted`; an empty `names` means already in order."""
    values = np.asarray(values, dtype=np.float64)
    if len(names) == 0:
        if values.shape != (len(wanted),):
            raise ArmBridgeError(f"{what}: {values.size} values for {len(wanted)} joints {tuple(wanted)}")
        return values
    if len(names) != values.size:
        raise ArmBridgeError(f"{what}: {len(names)} names but {values.size} values")
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in index]
    if missing:
        raise ArmBridgeError(f"{what}: joints {missing} missing (got {list(names)})")
    return values[[index[n] for n in wanted]]


class ArmBridge:
    """Velocity-mode bridge with safety filter, deadman, home and stop (see the module docstring)."""

    def __init__(self, config: ArmBridgeConfig, profile: RobotProfile,
                 safety_filter: SafetyFilterLike | None = None) -> None:
        self.config = config
        self.profile = profile
        self.joint_names = profile.joint_names
        self.safety = safety_filter if safety_filter is not None else profile.safety_filter()
        self._lock = threading.Lock()
        self._n = len(self.joint_names)
        self._home = np.asarray(profile.home_q, dtype=np.float64)
        self.mode = Mode.WAITING_FOR_MODE
        self._command = np.zeros(self._n)
        self._deadman = Deadman(config.deadman_period_s)  # fed by valid commands
        self._fresh = False
        self._deadman_tripped = False
        self._q: np.ndarray | None = None
        self._state_watch = Deadman(config.joint_state_timeout_s)  # fed by finite joint states
        self._stale_latched = False
        self._last_sent: np.ndarray | None = None
        self._home_timer = Deadman(config.home_timeout_s)  # fed when a homing starts
        self.home_result: bool | None = None  # outcome of the last homing (None while it runs)
        self.home_done = threading.Event()
        # counters
        self.commands = 0
        self.rejected_commands = 0
        self.sent = 0
        self.deadman_trips = 0
        self.stale_state_stops = 0
        self.events: Counter[str] = Counter()
        self.temperatures: dict[str, float] = {}

    # ----------------------------------------------------------------- velocity mode
    def operating_mode_request(self) -> dict[str, Any]:
        """Fields of interbotix_xs_msgs/srv/OperatingModes for putting the group in velocity mode."""
        return {
            "cmd_type": "group",
            "name": self.config.group,
            "mode": "velocity",
            "profile_type": "velocity",
            "profile_velocity": 0,  # unused by the servo in velocity mode
            "profile_acceleration": int(self.config.profile_acceleration),
        }

    def velocity_mode_set(self) -> None:
        """Call after set_operating_modes succeeded; commands are accepted from now on."""
        with self._lock:
            if self.mode == Mode.WAITING_FOR_MODE:
                self.mode = Mode.IDLE
        log.info("arm bridge: group %r is in velocity mode", self.config.group)

    # ----------------------------------------------------------------- inputs
    def on_joint_state(self, names: Sequence[str], positions: Sequence[float], now: float) -> None:
        q = reorder(names, positions, self.joint_names, "joint state")
        with self._lock:
            if np.all(np.isfinite(q)) and self._state_watch.feed(now):
                self._q = q

    def on_command(self, names: Sequence[str], velocities: Sequence[float], now: float) -> bool:
        """Store a command (rad/s); returns False (and counts it) when it is refused."""
        try:
            qdot = reorder(names, velocities, self.joint_names, "velocity command")
        except ArmBridgeError as exc:
            with self._lock:
                self.rejected_commands += 1
            log.warning("arm bridge: refused command: %s", exc)
            return False
        with self._lock:
            if self.mode in (Mode.WAITING_FOR_MODE, Mode.STOPPED, Mode.HOMING):
                self.rejected_commands += 1
                return False
            if not np.all(np.isfinite(qdot)):
                # Not a valid command: stop now, and let the deadman keep counting from the last
                # valid one (a sender stuck on NaN must not keep the arm alive).
                self.rejected_commands += 1
                self.events["non_finite"] += 1
                log.warning("arm bridge: non-finite velocity command %s: sending zeros", qdot)
                self._command = np.zeros(self._n)
                self._fresh = True
                return False
            self.commands += 1
            self._command = qdot
            self._deadman.feed(now)  # a non-finite `now` does not feed it: the next tick sends zeros
            self._fresh = True
            self._deadman_tripped = False
            self.mode = Mode.COMMAND
            return True

    def start_home(self, now: float) -> None:
        with self._lock:
            if self.mode == Mode.WAITING_FOR_MODE:
                raise ArmBridgeError("home requested before the arm is in velocity mode")
            self.mode = Mode.HOMING
            self._home_timer.feed(now)
            self.home_result = None
            self.home_done.clear()

    def stop(self) -> None:
        """Latch zeros until the next home; a homing in progress fails."""
        with self._lock:
            if self.mode == Mode.HOMING:
                self._finish_home(False)
            if self.mode != Mode.WAITING_FOR_MODE:
                self.mode = Mode.STOPPED
            self._fresh = True

    def _finish_home(self, ok: bool) -> None:
        self.home_result = ok
        self.mode = Mode.IDLE if ok else Mode.STOPPED
        self.home_done.set()

    # ----------------------------------------------------------------- the tick
    def tick(self, now: float) -> np.ndarray | None:
        """Velocity to publish on commands/joint_group now, or None when nothing changed."""
        cfg = self.config
        with self._lock:
            if self.mode == Mode.WAITING_FOR_MODE:
                return None
            zeros = np.zeros(self._n)
            state_ok = self._q is not None and not self._state_watch.expired(now)
            if not state_ok:
                desired = zeros
                if not self._stale_latched and self.mode in (Mode.COMMAND, Mode.HOMING):
                    self.stale_state_stops += 1
                    log.warning("arm bridge: joint states missing or older than %.2f s: sending zeros",
                                cfg.joint_state_timeout_s)
                self._stale_latched = True
                if self.mode == Mode.HOMING and self._home_timer.expired(now):
                    self._finish_home(False)
            else:
                self._stale_latched = False
                desired = self._desired(now, zeros)
            if state_ok:
                safe = self.safety.filter(self._q, desired)
                velocity = np.asarray(safe.velocity, dtype=np.float64)
                for event in safe.events:
                    self.events[event] += 1
            else:
                velocity = desired
            changed = self._last_sent is None or not np.allclose(velocity, self._last_sent, atol=1e-6)
            if not (changed or self._fresh):
                return None
            self._fresh = False
            self._last_sent = velocity.copy()
            self.sent += 1
            return velocity.copy()

    def _desired(self, now: float, zeros: np.ndarray) -> np.ndarray:
        cfg = self.config
        if self.mode == Mode.COMMAND:
            if self._deadman.expired(now):
                # A held zero command expiring is not a trip: there was nothing to stop.
                if np.any(self._command != 0):
                    self.deadman_trips += 1
                    self._deadman_tripped = True
                    log.warning("arm bridge: no command for %.2f s (deadman %.2f s): sending zeros",
                                self._deadman.age(now), cfg.deadman_period_s)
                self.mode = Mode.IDLE
                return zeros
            return self._command
        if self.mode == Mode.HOMING:
            error = self._home - self._q
            if np.max(np.abs(error)) <= cfg.home_tolerance:
                self._finish_home(True)
                return zeros
            if self._home_timer.expired(now):
                log.error("arm bridge: homing did not converge within %.1f s (largest error %.3f rad)",
                          cfg.home_timeout_s, float(np.max(np.abs(error))))
                self._finish_home(False)
                return zeros
            return np.clip(cfg.home_gain * error, -cfg.home_max_speed, cfg.home_max_speed)
        return zeros

    def shutdown_command(self) -> np.ndarray | None:
        """What to send when the node exits: zeros, or None before velocity mode was confirmed
        (in position mode a zero command would mean "move every joint to 0 rad")."""
        with self._lock:
            if self.mode == Mode.WAITING_FOR_MODE:
                return None
            if self.mode == Mode.HOMING:
                self._finish_home(False)  # release a home request that is waiting for the result
            self.mode = Mode.STOPPED
            return np.zeros(self._n)

    # ----------------------------------------------------------------- diagnostics
    def status(self, now: float) -> DiagStatus:
        with self._lock:
            values = {
                "mode": self.mode.value,
                "commands": str(self.commands),
                "rejected_commands": str(self.rejected_commands),
                "sent": str(self.sent),
                "deadman_trips": str(self.deadman_trips),
                "stale_joint_state_stops": str(self.stale_state_stops),
                "clamps_total": str(sum(self.events.values())),
            }
            values.update({f"clamp:{k}": str(v) for k, v in sorted(self.events.items())})
            values.update({f"temperature_c:{k}": f"{v:.1f}" for k, v in sorted(self.temperatures.items())})
            state_age = self._state_watch.age(now)
            values["command_age_s"] = f"{self._deadman.age(now):.3f}"
            if self._q is not None:
                values["joint_state_age_s"] = f"{state_age:.3f}"
            if self.mode == Mode.WAITING_FOR_MODE:
                return DiagStatus(DiagLevel.WARN, "waiting for velocity mode", values)
            if self._q is None or state_age > self.config.joint_state_timeout_s:
                return DiagStatus(DiagLevel.ERROR, "no fresh joint states: holding zeros", values)
            if self.mode == Mode.STOPPED:
                return DiagStatus(DiagLevel.WARN, "stopped (call home to resume)", values)
            if self._deadman_tripped:
                return DiagStatus(DiagLevel.WARN, "deadman tripped: no fresh commands", values)
            return DiagStatus(DiagLevel.OK, self.mode.value, values)

    def set_temperatures(self, temps: dict[str, float]) -> None:
        with self._lock:
            self.temperatures = dict(temps)
