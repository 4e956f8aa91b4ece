"""The arm guard: a second, independent stop for the arm, in its own process (arm_guard_node).

xs_sdk has no command timeout: a servo in velocity mode keeps its last Goal_Velocity until told
otherwise. arm_node stops the arm when its commander (the agent) goes quiet, but if arm_node itself
dies (a crash, `kill -9`, the OOM killer) nothing stops it. The guard watches arm_node and stops
the arm in that case:

- arm_node publishes a heartbeat at its tick rate once the arm group is in velocity mode (what it
  currently commands, sensor_msgs/JointState on `meld/arm/heartbeat`); the guard is armed by the
  first heartbeat, so it never sends zeros to a group in position mode (where 0 means "go to 0 rad");
- it also reads what goes out on xs_sdk's `commands/joint_group` (the last command on the wire,
  whoever sent it) and the measured joint velocities of `joint_states` when xs_sdk fills them;
- when the heartbeat is older than `silence_s` while the arm may be moving (the last command on
  the wire is not zero, or a measured velocity is above `moving_threshold_rad_s`), it publishes
  zero velocity on `commands/joint_group` at every tick: at least `zero_repeats` times, and as
  long as the arm is measured moving. A heartbeat that comes back (arm_node respawned) ends it.

`tick(now)` returns the zeros to publish or None; the node only wires topics and a timer. Clocks are
the guard node's own (receipt times), so arm_node's and the guard's clocks never need to agree.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from meld_core.hardware.diagnostics import DiagLevel, DiagStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmGuardConfig:
    """Parameters of the arm guard (one ROS parameter per field in arm_guard_node)."""

    robot_name: str = "wx200"  # xs_sdk namespace: zeros go to <robot_name>/commands/joint_group
    group: str = "arm"  # xs_sdk joint group arm_node commands (the zeros name it)
    silence_s: float = 0.25  # arm_node counts as gone when its heartbeat is older than this
    tick_hz: float = 50.0  # how often the guard checks (and repeats zeros while tripped)
    moving_threshold_rad_s: float = 0.05  # a measured joint speed above this counts as moving
    joint_state_max_age_s: float = 0.5  # older measured velocities are not used
    zero_repeats: int = 5  # after a trip, zeros are published at least this many ticks

    def __post_init__(self) -> None:
        if not self.robot_name or not self.group:
            raise ValueError("ArmGuardConfig.robot_name and .group must not be empty")
        for name in ("silence_s", "tick_hz", "moving_threshold_rad_s", "joint_state_max_age_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ArmGuardConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.silence_s < 2.0 / self.tick_hz:
            raise ValueError("ArmGuardConfig.silence_s must be at least two guard ticks (2 / tick_hz)")
        if self.zero_repeats < 1:
            raise ValueError("ArmGuardConfig.zero_repeats must be >= 1")


class ArmGuard:
    """Watches arm_node's heartbeat and stops the arm when it goes silent (see the module docstring)."""

    def __init__(self, config: ArmGuardConfig, joint_names: Sequence[str]) -> None:
        self.config = config
        self.joint_names = tuple(joint_names)
        self._n = len(self.joint_names)
        self._lock = threading.Lock()
        self._beat_at: float | None = None
        self._commanded = np.zeros(self._n)  # newest command seen on the wire or in a heartbeat
        self._measured: tuple[np.ndarray, float] | None = None
        self._tripped = False
        self._zeros_left = 0
        # counters for diagnostics
        self.heartbeats = 0
        self.trips = 0
        self.zeros_sent = 0

    # ----------------------------------------------------------------- inputs
    def on_heartbeat(self, velocity: Sequence[float], now: float) -> None:
        """arm_node is alive, in velocity mode, and commands `velocity` (rad/s, joint order)."""
        v = np.asarray(velocity, dtype=np.float64)
        with self._lock:
            self.heartbeats += 1
            self._beat_at = now
            if v.shape == (self._n,):
                self._commanded = v
            if self._tripped:
                log.warning("arm guard: arm_node's heartbeat is back; standing down")
                self._tripped = False
                self._zeros_left = 0

    def on_group_command(self, group: str, cmd: Sequence[float], now: float) -> None:
        """Anything published on xs_sdk's commands/joint_group (arm_node's, and the guard's own zeros)."""
        v = np.asarray(cmd, dtype=np.float64)
        if group != self.config.group or v.shape != (self._n,):
            return
        with self._lock:
            self._commanded = v

    def on_joint_state(self, names: Sequence[str], velocities: Sequence[float], now: float) -> None:
        """Measured velocities (xs_sdk fills them; its simulator does not: then only commands count)."""
        if len(velocities) == 0 or len(names) != len(velocities):
            return
        index = {n: i for i, n in enumerate(names)}
        if any(n not in index for n in self.joint_names):
            return
        v = np.asarray([velocities[index[n]] for n in self.joint_names], dtype=np.float64)
        with self._lock:
            self._measured = (v, now)

    # ----------------------------------------------------------------- decisions
    def _moving(self, now: float) -> bool:
        commanded = bool(np.any(np.abs(np.nan_to_num(self._commanded, nan=1.0)) > 0.0))
        measured = self._measured
        if measured is not None and now - measured[1] <= self.config.joint_state_max_age_s:
            speeds = np.abs(np.nan_to_num(measured[0], nan=0.0))
            return commanded or bool(np.any(speeds > self.config.moving_threshold_rad_s))
        return commanded

    def silent(self, now: float) -> bool:
        """Armed (a heartbeat was seen) and the newest one is older than silence_s."""
        with self._lock:
            return self._beat_at is not None and now - self._beat_at > self.config.silence_s

    def tick(self, now: float) -> np.ndarray | None:
        """Zeros to publish on commands/joint_group now, or None."""
        with self._lock:
            if self._beat_at is None or now - self._beat_at <= self.config.silence_s:
                return None
            moving = self._moving(now)
            if not self._tripped:
                if not moving:
                    return None
                self._tripped = True
                self._zeros_left = self.config.zero_repeats
                self.trips += 1
                log.error("arm guard: no heartbeat from arm_node for %.2f s while the arm moves: "
                          "sending zero velocity", now - self._beat_at)
            if self._zeros_left <= 0 and not moving:
                return None
            self._zeros_left -= 1
            self.zeros_sent += 1
            return np.zeros(self._n)

    def exit_command(self, now: float) -> np.ndarray | None:
        """What to send when the guard itself stops: zeros if it is armed and the arm may be moving
        (when arm_node was killed, the launch shuts down at once: the guard may be stopped before
        its silence period ran out)."""
        with self._lock:
            if self._beat_at is None:
                return None
            if self._tripped or self._moving(now):
                self.zeros_sent += 1
                return np.zeros(self._n)
            return None

    def status(self, now: float) -> DiagStatus:
        with self._lock:
            values = {"heartbeats": str(self.heartbeats), "trips": str(self.trips),
                      "zeros_sent": str(self.zeros_sent)}
            if self._beat_at is None:
                return DiagStatus(DiagLevel.WARN, "waiting for arm_node's heartbeat (velocity mode)", values)
            values["heartbeat_age_s"] = f"{now - self._beat_at:.3f}"
            if self._tripped:
                return DiagStatus(DiagLevel.ERROR, "arm_node silent: arm stopped by the guard", values)
            return DiagStatus(DiagLevel.OK, "arm_node alive", values)
