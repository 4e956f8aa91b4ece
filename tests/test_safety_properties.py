"""Properties of the safety filter and the deadman over generated input (hypothesis).

Joint states at, near and beyond the limits; commands up to several times the velocity limits,
non-finite and huge; clocks that step back and forth or go NaN. Each property is a promise the arm
node relies on: outputs finite and within the velocity limits, never deeper past a position limit,
the plug tip's whole path over the hold inside the workspace box, zeros within the deadman period
of the last valid command.
"""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from meld_core.bridge.arm_bridge import ArmBridge, ArmBridgeConfig
from meld_core.robot.kinematics import WidowXKinematics
from meld_core.robot.profile import RobotProfile
from meld_core.robot.safety import Deadman

KIN = WidowXKinematics.from_urdf()
PROFILE = RobotProfile.from_kinematics(KIN)
SAFETY = PROFILE.safety_filter()
CFG = SAFETY.config
LOWER, UPPER = np.array(CFG.lower), np.array(CFG.upper)
VMAX = np.array(CFG.velocity_limits)
LO, HI = LOWER + CFG.limit_margin, UPPER - CFG.limit_margin  # the filter's own limits
BOX_MIN, BOX_MAX = np.array(CFG.workspace_min), np.array(CFG.workspace_max)
JOINTS = PROFILE.joint_names

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def joint_position(i):
    """Joint i anywhere from 0.5 rad below its lower limit to 0.5 rad above its upper one, with the
    limits themselves (URDF and the filter's) drawn often."""
    edges = [LOWER[i], UPPER[i], LO[i], HI[i], LOWER[i] - 0.01, UPPER[i] + 0.01]
    return st.one_of(st.sampled_from(edges), st.floats(LOWER[i] - 0.5, UPPER[i] + 0.5))


positions = st.tuples(*[joint_position(i) for i in range(5)]).map(np.array)
commands = st.lists(st.floats(-4.0, 4.0), min_size=5, max_size=5).map(np.array)
wild_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**400, 10**400),
                         st.sampled_from([1e308, -1e308, 10**400, -(10**400)]))
wild_vectors = st.one_of(commands, st.lists(wild_numbers, min_size=5, max_size=5),
                         st.lists(st.floats(-1, 1), min_size=0, max_size=7), st.none(), st.text(max_size=5),
                         st.dictionaries(st.text(max_size=3), st.floats(), max_size=2),
                         st.lists(st.text(max_size=3), min_size=5, max_size=5))


def assert_safe_output(out):
    assert out.velocity.shape == (5,) and out.velocity.dtype == np.float64
    assert np.all(np.isfinite(out.velocity))
    assert np.all(np.abs(out.velocity) <= VMAX)


@FAST
@given(q=st.one_of(positions, wild_vectors), qdot=wild_vectors)
def test_any_input_gives_a_finite_command_within_the_velocity_limits(q, qdot):
    out = SAFETY.filter(q, qdot)
    assert_safe_output(out)


@FAST
@given(q=positions, qdot=commands)
def test_no_joint_goes_deeper_past_a_limit_or_crosses_one_within_the_hold(q, qdot):
    out = SAFETY.filter(q, qdot)
    assert_safe_output(out)
    v, h = out.velocity, CFG.hold_time_s
    beyond_hi, beyond_lo = q >= HI, q <= LO
    assert np.all(v[beyond_hi] <= 0.0) and np.all(v[beyond_lo] >= 0.0)
    inside = ~(beyond_hi | beyond_lo)
    after = q + v * h
    assert np.all(after[inside] <= HI[inside] + 1e-9) and np.all(after[inside] >= LO[inside] - 1e-9)


# Poses with the plug tip inside the box, a third of them within 3 mm of a wall, found once with
# numpy (a random pose rarely has its tip in the box); hypothesis picks one and nudges it.
_qs = np.random.default_rng(0).uniform(LO, HI, size=(20000, 5))
_tips = KIN.positions(_qs, CFG.workspace_link)
_clearance = np.min(np.concatenate([_tips - BOX_MIN, BOX_MAX - _tips], axis=1), axis=1)  # < 0: outside
BASES = np.concatenate([_qs[_clearance >= 0][:200], _qs[(_clearance >= 0) & (_clearance <= 0.003)][:100]])


def tip_inside(q):
    p = KIN.tool_pose(q)[:3, 3]
    return bool(np.all(q > LOWER) and np.all(q < UPPER) and np.all(p >= BOX_MIN) and np.all(p <= BOX_MAX))


inside_poses = st.builds(lambda i, nudge: BASES[i] + np.array(nudge), st.integers(0, len(BASES) - 1),
                         st.lists(st.floats(-0.02, 0.02), min_size=5, max_size=5)).filter(tip_inside)


@SLOW
@given(q=inside_poses, qdot=commands)
def test_the_tool_path_of_the_hold_stays_inside_the_box(q, qdot):
    out = SAFETY.filter(q, qdot)
    assert_safe_output(out)
    s = np.linspace(0.0, 1.0, 257)[:, None]
    path = KIN.positions(q + s * out.velocity * CFG.hold_time_s, CFG.workspace_link)
    outside = float(np.max(np.concatenate([BOX_MIN - path, path - BOX_MAX])))  # m, < 0 when inside
    target(outside)  # steer the search towards paths that bulge out
    assert outside <= CFG.path_tolerance_m + 1e-9


# -- the deadman and the bridge on a misbehaving clock ---------------------------------------------
clock_steps = st.one_of(st.just(0.0), st.just(0.0), st.just(0.0), st.floats(-20.0, 20.0),
                        st.sampled_from([math.nan, math.inf, -math.inf]))
events = st.lists(st.tuples(
    st.floats(0.001, 0.12),  # true time to the next tick, s
    clock_steps,  # the clock's jump (0 most of the time)
    st.sampled_from(["none", "none", "valid", "valid", "nan_command", "nan_stamp"]),
    commands,
), min_size=1, max_size=60)


@FAST
@given(steps=events)
def test_the_deadman_fires_within_its_period_of_the_last_valid_feed(steps):
    deadman, period = Deadman(0.45), 0.45
    true_time, offset, last_valid = 0.0, 100.0, None
    for dt, jump, kind, _ in steps:
        true_time += dt
        stamp = true_time + offset + jump
        if math.isfinite(jump):
            offset += jump
        if kind == "valid" and deadman.feed(stamp):
            last_valid = true_time
        elif kind == "nan_stamp":
            assert not deadman.feed(math.nan)
        if not deadman.expired(stamp):
            assert last_valid is not None and true_time - last_valid <= period + 1e-9


@SLOW
@given(steps=events)
def test_the_arm_gets_zeros_within_the_deadman_period_of_the_last_valid_command(steps):
    bridge = ArmBridge(ArmBridgeConfig(), PROFILE)
    bridge.velocity_mode_set()
    period = bridge.config.deadman_period_s
    q = np.array([0.0, -0.3, 0.3, 0.4, 0.0])
    true_time, offset, last_valid, sent = 0.0, 100.0, None, None
    for dt, jump, kind, qdot in steps:
        true_time += dt
        stamp = true_time + offset + jump
        if math.isfinite(jump):
            offset += jump
        bridge.on_joint_state(JOINTS, q, stamp)
        if kind == "valid":
            if bridge.on_command(JOINTS, qdot * 0.1, stamp) and math.isfinite(stamp):
                last_valid = true_time
        elif kind == "nan_command":
            assert not bridge.on_command(JOINTS, np.where(qdot == qdot.max(), np.nan, qdot), stamp)
        elif kind == "nan_stamp":
            bridge.on_command(JOINTS, qdot * 0.1, math.nan)  # stored; the deadman is not fed
        out = bridge.tick(stamp)
        if out is not None:
            sent = out
        if sent is not None and np.any(sent != 0.0):
            assert last_valid is not None and true_time - last_valid <= period + 1e-9
