"""The safety filter between any velocity command and the WidowX (real arm node and simulation).

    safety = RobotProfile.load().safety_filter()       # limits from the one robot profile
    cmd = safety.filter(q_measured, qdot_requested)    # -> SafeCommand(velocity, events)
    deadman = Deadman(period_s=0.5)

Rules, applied to every command in this order (each adds an event naming what it changed):

1. `bad_shape` / `non_finite` / `non_finite_state`: a command (or a measured state) that is not a
   vector of one real number per joint (a string, None, a dict, a (1, 5) array, ...) or holds
   NaN, inf or a number too large for a float becomes all zeros. `filter` never raises: whatever
   it is given, its output is finite and within the velocity limits (`filter_error` if a rule
   itself failed).
2. `velocity_clamp:<joint>`: each joint's speed is clamped to its velocity limit.
3. `position_brake:<joint>`: the speed towards a position limit ramps down to zero over
   `brake_margin` before the (shrunk) limit, and is capped so that holding the command for
   `hold_time_s` cannot cross it. Moving away from a limit is always allowed; a joint already past
   a limit never moves further past it.
4. `workspace:<axis>_<min|max>`: the point `workspace_link` (the plug tip) must stay inside the
   workspace box along the whole path of holding the command for `hold_time_s` (a straight line in
   joint space, which bulges in Cartesian space): the path is sampled densely enough that, with the
   bound on its curvature from the arm's reach, no point between samples can leave the box by more
   than `path_tolerance_m`. The outward part of the motion is removed (least-norm joint
   correction), and as a last resort the whole command is scaled down. Outside the box only motion
   back towards it is allowed.

The deadman is separate (`Deadman`): whoever sends commands feeds it; when it expires the sender
must command zeros (xs_sdk has no command timeout of its own).
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meld_core.robot.kinematics import TOOL_LINK, WidowXKinematics

log = logging.getLogger(__name__)

_AXES = "xyz"
_MAX_PATH_SAMPLES = 64  # enough for the WidowX at full speed to keep within path_tolerance_m


def _as_vector(value: Any, n: int) -> tuple[np.ndarray | None, str]:
    """`value` as a float vector of length n: (vector, "") or (None, "bad_shape" / "non_finite")."""
    try:
        raw = np.asarray(value)
        if raw.shape != (n,):
            return None, "bad_shape"
        if raw.dtype.kind in "iuf":
            with np.errstate(over="ignore", invalid="ignore"):
                vector = raw.astype(np.float64)
        elif raw.dtype.kind == "O" and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                           for v in raw):
            vector = np.array([_real_to_float(v) for v in raw], dtype=np.float64)  # e.g. huge Python ints
        else:
            return None, "bad_shape"  # strings, bools, complex numbers, objects
    except Exception:  # numpy raises many types for ragged or hostile input
        return None, "bad_shape"
    return (vector, "") if np.all(np.isfinite(vector)) else (None, "non_finite")


def _real_to_float(value: numbers.Real) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


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
    path_tolerance_m: float = 0.0005  # m the held command's path may pass a wall between its samples

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
        if not self.path_tolerance_m > 0:
            raise ValueError("path_tolerance_m must be > 0")
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
        self._reach = kinematics.reach(config.workspace_link)  # bounds the path's curvature

    @property
    def num_joints(self) -> int:
        return len(self.config.joint_names)

    def zero(self) -> np.ndarray:
        return np.zeros(self.num_joints)

    def filter(self, q: Any, qdot: Any) -> SafeCommand:
        """Return the safe version of the velocity command `qdot` (rad/s) at measured positions `q`.

        Total: never raises, whatever `q` and `qdot` are; the velocity is always finite and within
        the velocity limits (zeros, with an event, for input it cannot use)."""
        n = self.num_joints
        command, problem = _as_vector(qdot, n)
        if command is None:
            log.warning("safety: velocity command is %s (want %d finite numbers): %.200r; sending zeros",
                        "not finite" if problem == "non_finite" else "malformed", n, qdot)
            return SafeCommand(self.zero(), (problem,))
        state, problem = _as_vector(q, n)
        if state is None:
            log.warning("safety: joint state is %s: %.200r; sending zeros",
                        "not finite" if problem == "non_finite" else "malformed", q)
            return SafeCommand(self.zero(), ("non_finite_state" if problem == "non_finite" else problem,))
        events: list[str] = []
        try:
            with np.errstate(over="ignore"):  # a state of 1e308 rad: its room to a limit overflows to inf
                command = self._clamp(command, events)
                command = self._brake(state, command, events)
                command = self._workspace(state, command, events)
        except Exception:  # a defect in a rule must not leave the arm moving
            log.exception("safety: the filter failed on q=%s, qdot=%s; sending zeros", state, command)
            return SafeCommand(self.zero(), ("filter_error",))
        if not (np.all(np.isfinite(command)) and np.all(np.abs(command) <= self._vmax)):
            log.error("safety: the filter produced %s for q=%s; sending zeros", command, state)
            return SafeCommand(self.zero(), ("filter_error",))
        seen: dict[str, None] = dict.fromkeys(events)
        if seen:
            log.debug("safety: %s", ", ".join(seen))
        return SafeCommand(command, tuple(seen))

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

    def _path_excess(self, q: np.ndarray, qdot: np.ndarray, p0: np.ndarray,
                     ) -> tuple[np.ndarray, float, list[str]]:
        """How far the held command's path leaves the box: the outward excess (3,) at its worst
        sample, that sample's fraction of the hold time, and the faces crossed anywhere.

        Holding `qdot` moves the joints along d = qdot * hold_time_s; the tool point p(s), s in [0, 1],
        has |p''| <= reach * |d|_1^2 (each second derivative of a revolute chain is bounded by the
        distance to an axis). So between K evenly spaced samples the path stays within
        margin = reach * |d|_1^2 / (8 K^2) of them; samples inside the box shrunk by the margin keep
        the whole path inside it. K is chosen so that the margin is at most path_tolerance_m.
        Outside the box (per axis) no sample may move further out than p0.
        """
        cfg = self.config
        d = qdot * cfg.hold_time_s
        l1 = float(np.sum(np.abs(d)))
        k = min(max(math.ceil(l1 * math.sqrt(self._reach / (8.0 * cfg.path_tolerance_m))), 1),
                _MAX_PATH_SAMPLES)
        margin = self._reach * l1 ** 2 / (8.0 * k ** 2)
        s = np.arange(1, k + 1) / k
        moved = self.kin.positions(q + s[:, None] * d, cfg.workspace_link) - p0  # (K, 3)
        allow_hi = np.maximum(self._box_max - margin - p0, 0.0)
        allow_lo = np.minimum(self._box_min + margin - p0, 0.0)
        excess = np.where(moved > allow_hi, moved - allow_hi,
                          np.where(moved < allow_lo, moved - allow_lo, 0.0))
        worst = int(np.argmax(np.max(np.abs(excess), axis=1) / s))  # most correction per unit of speed
        faces = [f"workspace:{_AXES[a]}_{'max' if np.max(excess[:, a]) > 1e-9 else 'min'}"
                 for a in range(3) if np.max(np.abs(excess[:, a])) > 1e-9]
        return excess[worst], float(s[worst]), faces

    def _workspace(self, q: np.ndarray, qdot: np.ndarray, events: list[str]) -> np.ndarray:
        link, h = self.config.workspace_link, self.config.hold_time_s
        p0 = self.kin.forward(q, link)[:3, 3]
        excess, s, faces = self._path_excess(q, qdot, p0)
        if not faces:
            return qdot
        events.extend(faces)
        jac = self.kin.jacobian(q, link)[:3]
        for _ in range(3):
            rows = np.flatnonzero(np.abs(excess) > 1e-9)
            if rows.size == 0:
                break
            j = jac[rows]
            # Least-norm joint correction removing the outward excess (m at fraction s of the hold).
            qdot = qdot - j.T @ np.linalg.solve(j @ j.T + 1e-6 * np.eye(rows.size), excess[rows] / (s * h))
            qdot = self._brake(q, self._clamp(qdot, []), [])
            excess, s, _ = self._path_excess(q, qdot, p0)
        if np.any(np.abs(excess) > 1e-9):
            # Fall back to scaling the whole command down; `lo` is always a scale that was checked
            # (scale 0 is always inside).
            lo, hi = 0.0, 1.0
            for _ in range(20):
                mid = (lo + hi) / 2.0
                bad, _, _ = self._path_excess(q, mid * qdot, p0)
                lo, hi = (mid, hi) if not np.any(np.abs(bad) > 1e-9) else (lo, mid)
            qdot = qdot * lo
        return qdot


class Deadman:
    """Freshness watchdog: `expired(now)` is True until fed and once `period_s` passed since the last
    valid `feed`. Used for commands (the arm's deadman), joint states and timeouts.

    It runs on the caller's clock (wall, ROS or simulated time), which can misbehave; the deadman
    then only ever expires sooner, never later:
    - a non-finite `now` does not feed it (`feed` returns False), and `expired(nan)` is True;
    - a clock that steps backwards (a sim-time reset, an NTP step) expires it at once: how much time
      passed is unknown. It stays expired until fed again, and runs on the new time from then on;
    - a clock that steps forwards expires it early.
    """

    def __init__(self, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError(f"Deadman period must be > 0 s, got {period_s}")
        self.period_s = float(period_s)
        self._last: float | None = None  # time of the last valid feed
        self._newest = -math.inf  # newest time seen: an older one means the clock stepped back

    def feed(self, now: float) -> bool:
        """Record that something fresh arrived at `now`; False (and nothing recorded) if `now` is
        not a finite number."""
        if not _finite_time(now):
            return False
        self._last = self._newest = float(now)
        return True

    def reset(self) -> None:
        """Forget the last feed: expired until fed again."""
        self._last = None

    def expired(self, now: float) -> bool:
        if not _finite_time(now) or now < self._newest:
            self._last = None  # the clock is broken or stepped back: nothing is fresh any more
            if _finite_time(now):
                self._newest = float(now)
            return True
        self._newest = float(now)
        return self._last is None or now - self._last > self.period_s

    def age(self, now: float) -> float:
        """Seconds since the last feed (inf if never fed, or if `now` is not after it)."""
        if self._last is None or not _finite_time(now) or now < self._last:
            return math.inf
        return float(now) - self._last


def _finite_time(now: Any) -> bool:
    if isinstance(now, bool) or not isinstance(now, (int, float, np.floating, np.integer)):
        return False
    try:
        return math.isfinite(now)
    except OverflowError:  # an int beyond float range
        return False
