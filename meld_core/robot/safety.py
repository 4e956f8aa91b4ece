"""The safety filter between any velocity command and the WidowX (real arm node and simulation).

    safety = RobotProfile.load().safety_filter()       # limits from the one robot profile
    cmd = safety.filter(q_measured, qdot_requested)    # -> SafeCommand(velocity, events)
    deadman = Deadman(period_s=0.5)

Rules, applied to every command in this order (each adds an event naming what it changed):

1. `non_finite` / `bad_shape` / `non_finite_state`: a command (or a measured state) with NaN/inf
   or the wrong length becomes all zeros. The filter never raises on bad input.
2. `velocity_clamp:<joint>`: each joint's speed is clamped to its velocity limit.
3. `position_brake:<joint>`: the speed towards a position limit ramps down to zero over
   `brake_margin` before the (shrunk) limit, and is capped so that holding the command for
   `hold_time_s` cannot cross it. Moving away from a limit is always allowed.
4. `workspace:<axis>_<min|max>`: the point `workspace_link` (the plug tip) must stay inside the
   workspace box over `hold_time_s`: the outward part of its predicted motion is removed
   (least-norm joint correction), and as a last resort the whole command is scaled down.
   Outside the box only motion back towards it is allowed.

The deadman is separate (`Deadman`): whoever sends commands feeds it; when it expires the sender
must command zeros (xs_sdk has no command timeout of its own).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from meld_core.robot.kinematics import TOOL_LINK, WidowXKinematics

log = logging.getLogger(__name__)

_AXES = "xyz"


@dataclass(frozen=True)
class SafetyConfig:
    """Limits applied to every joint-velocity command. The robot's facts come from its profile
    (`meld_core.robot.profile.RobotProfile.safety_config`); only the filter's margins are its own."""

    joint_names: tuple[str, ...]  # arm joints, in command order
    velocity_limits: tuple[float, ...]  # rad/s per joint; commands are clamped to these
    lower: tuple[float, ...]  # rad, lower position limit per joint (from the URDF)
    upper: tuple[float, ...]  # rad, upper position limit per joint (from the URDF)
    workspace_min: tuple[float, float, float]  # m, box corner in base_link
    workspace_max: tuple[float, float, float]  # m, opposite box corner
    hold_time_s: float  # s a command may be applied before the next one (>= control period)
    workspace_link: str = TOOL_LINK  # the link kept inside the box (plug tip, or ee_gripper_link)
    limit_margin: float = 0.03  # rad kept free inside each URDF limit (the filter's own limit)
    brake_margin: float = 0.2  # rad before the filter's limit over which speed towards it ramps to 0

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ("velocity_limits", "lower", "upper"):
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(f"SafetyConfig.{name} needs {n} values (one per joint), got {len(value)}")
            if not all(np.isfinite(value)):
                raise ValueError(f"SafetyConfig.{name} must be finite, got {value}")
        if any(v <= 0 for v in self.velocity_limits):
            raise ValueError(f"velocity_limits must be > 0, got {self.velocity_limits}")
        if any(lo + 2 * self.limit_margin >= hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError("each joint needs lower + 2*limit_margin < upper; check the limits and "
                             "limit_margin")
        if self.limit_margin < 0 or self.brake_margin <= 0:
            raise ValueError("limit_margin must be >= 0 and brake_margin > 0")
        if not self.hold_time_s > 0:
            raise ValueError("hold_time_s must be > 0")
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3 or any(
                a >= b for a, b in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace box needs min < max on x, y, z; got {self.workspace_min}, "
                             f"{self.workspace_max}")


@dataclass(frozen=True)
class SafeCommand:
    """What the filter lets through, and the rules that changed it (empty if untouched)."""

    velocity: np.ndarray  # (n,) rad/s, always finite
    events: tuple[str, ...] = field(default_factory=tuple)


class SafetyFilter:
    """Stateless per-command filter; see the module docstring for the rules."""

    def __init__(self, config: SafetyConfig, kinematics: WidowXKinematics) -> None:
        if tuple(config.joint_names) != tuple(kinematics.joint_names):
            raise ValueError(f"SafetyConfig joints {config.joint_names} differ from the kinematics' "
                             f"{kinematics.joint_names}")
        self.config = config
        self.kin = kinematics
        self._vmax = np.asarray(config.velocity_limits, dtype=float)
        self._lo = np.asarray(config.lower, dtype=float) + config.limit_margin
        self._hi = np.asarray(config.upper, dtype=float) - config.limit_margin
        self._box_min = np.asarray(config.workspace_min, dtype=float)
        self._box_max = np.asarray(config.workspace_max, dtype=float)

    @property
    def num_joints(self) -> int:
        return len(self.config.joint_names)

    def zero(self) -> np.ndarray:
        return np.zeros(self.num_joints)

    def filter(self, q: np.ndarray, qdot: np.ndarray) -> SafeCommand:
        """Return the safe version of the velocity command `qdot` (rad/s) at measured positions `q`."""
        n = self.num_joints
        try:
            qdot = np.array(qdot, dtype=float).reshape(-1)
            q = np.array(q, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            log.warning("safety: command or state is not numeric; sending zeros")
            return SafeCommand(self.zero(), ("bad_shape",))
        if qdot.shape != (n,) or q.shape != (n,):
            log.warning("safety: expected %d values, got command %s, state %s; sending zeros", n,
                        qdot.shape, q.shape)
            return SafeCommand(self.zero(), ("bad_shape",))
        if not np.all(np.isfinite(qdot)):
            log.warning("safety: non-finite velocity command %s; sending zeros", qdot)
            return SafeCommand(self.zero(), ("non_finite",))
        if not np.all(np.isfinite(q)):
            log.warning("safety: non-finite joint state %s; sending zeros", q)
            return SafeCommand(self.zero(), ("non_finite_state",))

        events: list[str] = []
        qdot = self._clamp(qdot, events)
        qdot = self._brake(q, qdot, events)
        qdot = self._workspace(q, qdot, events)
        seen: dict[str, None] = dict.fromkeys(events)
        if seen:
            log.debug("safety: %s", ", ".join(seen))
        return SafeCommand(qdot, tuple(seen))

    # --- rules -------------------------------------------------------------------------------

    def _clamp(self, qdot: np.ndarray, events: list[str]) -> np.ndarray:
        clamped = np.clip(qdot, -self._vmax, self._vmax)
        for i in np.flatnonzero(clamped != qdot):
            events.append(f"velocity_clamp:{self.config.joint_names[i]}")
        return clamped

    def _brake(self, q: np.ndarray, qdot: np.ndarray, events: list[str]) -> np.ndarray:
        cfg = self.config
        # Largest allowed speed towards each limit (0 at or beyond the filter's limit).
        room_hi = np.maximum(self._hi - q, 0.0)
        room_lo = np.maximum(q - self._lo, 0.0)
        ramp_hi = self._vmax * np.minimum(room_hi / cfg.brake_margin, 1.0)
        ramp_lo = self._vmax * np.minimum(room_lo / cfg.brake_margin, 1.0)
        cap_hi = np.minimum(ramp_hi, room_hi / cfg.hold_time_s)
        cap_lo = np.minimum(ramp_lo, room_lo / cfg.hold_time_s)
        braked = np.clip(qdot, -cap_lo, cap_hi)
        for i in np.flatnonzero(np.abs(braked - qdot) > 1e-12):
            events.append(f"position_brake:{cfg.joint_names[i]}")
        return braked

    def _excess(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Signed outward excess of the predicted displacement per axis, and the faces violated."""
        d = p1 - p0
        allow_hi = np.maximum(self._box_max - p0, 0.0)
        allow_lo = np.minimum(self._box_min - p0, 0.0)
        excess = np.where(d > allow_hi, d - allow_hi, np.where(d < allow_lo, d - allow_lo, 0.0))
        faces = [f"workspace:{_AXES[a]}_{'max' if excess[a] > 0 else 'min'}"
                 for a in range(3) if abs(excess[a]) > 1e-9]
        return excess, faces

    def _workspace(self, q: np.ndarray, qdot: np.ndarray, events: list[str]) -> np.ndarray:
        link, h = self.config.workspace_link, self.config.hold_time_s
        p0 = self.kin.forward(q, link)[:3, 3]
        excess, faces = self._excess(p0, self.kin.forward(q + qdot * h, link)[:3, 3])
        if not faces:
            return qdot
        events.extend(faces)
        jac = self.kin.jacobian(q, link)[:3]
        for _ in range(3):
            rows = np.flatnonzero(np.abs(excess) > 1e-9)
            if rows.size == 0:
                break
            j = jac[rows]
            # Least-norm joint correction removing the outward excess (m over the hold time).
            qdot = qdot - j.T @ np.linalg.solve(j @ j.T + 1e-6 * np.eye(rows.size), excess[rows] / h)
            qdot = self._brake(q, self._clamp(qdot, []), [])
            excess, _ = self._excess(p0, self.kin.forward(q + qdot * h, link)[:3, 3])
        if np.any(np.abs(excess) > 1e-9):
            # Fall back to scaling the whole command down (scale 0 is always inside).
            lo, hi = 0.0, 1.0
            for _ in range(20):
                mid = (lo + hi) / 2.0
                bad, _ = self._excess(p0, self.kin.forward(q + mid * qdot * h, link)[:3, 3])
                lo, hi = (mid, hi) if not np.any(np.abs(bad) > 1e-9) else (lo, mid)
            qdot = qdot * lo
        return qdot


class Deadman:
    """Command-freshness watchdog: `expired(now)` is True until fed and `period_s` after the last feed."""

    def __init__(self, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError(f"Deadman period must be > 0 s, got {period_s}")
        self.period_s = float(period_s)
        self._last: float | None = None

    def feed(self, now: float) -> None:
        """Record that a fresh command arrived at time `now` (seconds, any monotonic clock)."""
        self._last = float(now)

    def reset(self) -> None:
        """Forget the last feed: expired until fed again."""
        self._last = None

    def expired(self, now: float) -> bool:
        return self._last is None or (now - self._last) > self.period_s

    def age(self, now: float) -> float:
        """Seconds since the last feed (inf if never fed)."""
        return float("inf") if self._last is None else now - self._last
