"""The safety filter shared by the real arm node and the simulation: one test per rule."""

import numpy as np
import pytest

from meld_core.robot.kinematics import WidowXKinematics
from meld_core.robot.profile import RobotProfile
from meld_core.robot.safety import Deadman, SafeCommand, SafetyFilter

# A comfortable pose: plug tip pointing down above the router, far from every joint limit.
READY = np.array([0.0, 0.2, 0.0, 1.3, 0.0])


@pytest.fixture(scope="module")
def kin() -> WidowXKinematics:
    return WidowXKinematics.from_urdf()


@pytest.fixture(scope="module")
def profile(kin) -> RobotProfile:
    return RobotProfile.from_kinematics(kin)


@pytest.fixture()
def safety(profile) -> SafetyFilter:
    return profile.safety_filter()


def test_config_comes_from_the_urdf(kin, profile):
    cfg = profile.safety_config(brake_margin=0.1, workspace_min=[0.0, -0.2, 0.0])
    assert cfg.joint_names == kin.joint_names
    assert np.allclose(cfg.velocity_limits, kin.velocity_limits)
    assert np.allclose(cfg.lower, kin.lower) and np.allclose(cfg.upper, kin.upper)
    assert cfg.brake_margin == 0.1 and cfg.workspace_min == (0.0, -0.2, 0.0)
    assert cfg.workspace_link == "plug_tip_link"


@pytest.mark.parametrize("bad", [
    {"velocity_limits": (1.0, 1.0)}, {"brake_margin": 0.0}, {"hold_time_s": -1.0},
    {"workspace_min": (0.5, 0.0, 0.0), "workspace_max": (0.1, 1.0, 1.0)}, {"limit_margin": 3.0},
    {"velocity_limits": (1.0, float("nan"), 1.0, 1.0, 1.0)},
])
def test_config_validation(kin, profile, bad):
    with pytest.raises(ValueError):
        profile.safety_config(**bad)


def test_safe_command_passes_unchanged(safety):
    qdot = np.array([0.1, -0.1, 0.05, 0.0, 0.2])
    out = safety.filter(READY, qdot)
    assert isinstance(out, SafeCommand)
    assert out.events == ()
    assert np.array_equal(out.velocity, qdot)


@pytest.mark.parametrize("qdot", [[np.nan, 0, 0, 0, 0], [0, np.inf, 0, 0, 0], [0, 0, 0, 0, -np.inf]])
def test_non_finite_command_becomes_zero(safety, qdot):
    out = safety.filter(READY, np.array(qdot))
    assert out.events == ("non_finite",)
    assert np.array_equal(out.velocity, np.zeros(5))


@pytest.mark.parametrize("qdot", [[0.1, 0.1], None, "fast", [[0.1] * 5] * 2])
def test_malformed_command_becomes_zero_without_raising(safety, qdot):
    out = safety.filter(READY, qdot)
    assert out.events == ("bad_shape",)
    assert np.array_equal(out.velocity, np.zeros(5))


def test_non_finite_state_stops_the_arm(safety):
    out = safety.filter(np.array([0.0, np.nan, 0, 0, 0]), np.full(5, 0.1))
    assert out.events == ("non_finite_state",)
    assert np.array_equal(out.velocity, np.zeros(5))


def test_velocity_clamp_per_joint(safety, kin):
    qdot = np.array([0.0, -5.0, 0.2, 10.0, 0.0])
    out = safety.filter(READY, qdot)
    assert "velocity_clamp:shoulder" in out.events and "velocity_clamp:wrist_angle" in out.events
    assert "velocity_clamp:elbow" not in out.events
    assert out.velocity[1] == pytest.approx(-1.0)  # shoulder limit is 1 rad/s
    assert out.velocity[2] == pytest.approx(0.2)
    assert np.all(np.abs(out.velocity) <= kin.velocity_limits + 1e-12)


def test_position_brake_near_limits(kin, profile):
    # A huge workspace box, so that only the joint-limit rule acts here.
    cfg = profile.safety_config(workspace_min=(-9, -9, -9), workspace_max=(9, 9, 9))
    safety = SafetyFilter(cfg, kin)
    q = READY.copy()
    q[2] = kin.upper[2] - cfg.limit_margin - 0.05  # elbow close to its upper limit
    out = safety.filter(q, np.array([0.0, 0.0, 2.0, 0.0, 0.0]))
    assert "position_brake:elbow" in out.events
    # Holding the command for hold_time_s must not pass the filter's limit.
    assert q[2] + out.velocity[2] * cfg.hold_time_s <= kin.upper[2] - cfg.limit_margin + 1e-9
    assert out.velocity[2] < 2.0 * 0.05 / cfg.brake_margin + 1e-9
    # Moving away from the limit is never braked.
    away = safety.filter(q, np.array([0.0, 0.0, -2.0, 0.0, 0.0]))
    assert not any(e.startswith("position_brake") for e in away.events)
    assert away.velocity[2] == pytest.approx(-2.0)


def test_position_brake_at_and_beyond_the_limit(safety, kin):
    q = READY.copy()
    q[0] = kin.lower[0] - 0.01  # waist beyond its lower limit
    out = safety.filter(q, np.array([-1.0, 0.0, 0.0, 0.0, 0.0]))
    assert out.velocity[0] == 0.0 and "position_brake:waist" in out.events
    assert safety.filter(q, np.array([1.0, 0, 0, 0, 0])).velocity[0] == pytest.approx(1.0)


def test_brake_never_lets_a_joint_cross_its_limit(safety, kin):
    """Integrate random commands at the control rate: every joint stays inside its limits."""
    rng = np.random.default_rng(1)
    q = READY.copy()
    for _ in range(300):
        out = safety.filter(q, rng.uniform(-4, 4, size=5))
        q = q + out.velocity * safety.config.hold_time_s
        assert np.all(q >= kin.lower) and np.all(q <= kin.upper)


def test_workspace_floor_removes_only_the_downward_motion(safety, kin):
    cfg = safety.config
    # Find a pose with the plug tip 5 mm above the workspace floor.
    target = kin.tool_pose(READY)
    target[2, 3] = cfg.workspace_min[2] + 0.005
    q = kin.inverse(target, READY, tip="plug_tip_link").q
    jac = kin.jacobian(q, "plug_tip_link")[:3]
    down_and_sideways = np.linalg.lstsq(jac, np.array([0.0, 0.05, -0.1]), rcond=None)[0]
    out = safety.filter(q, down_and_sideways)
    assert "workspace:z_min" in out.events
    p_next = kin.tool_pose(q + out.velocity * cfg.hold_time_s)[:3, 3]
    assert p_next[2] >= cfg.workspace_min[2] - 1e-4
    # The sideways part survives: the tip still moves in +y.
    assert p_next[1] - kin.tool_pose(q)[1, 3] > 0.005


def test_workspace_outside_allows_only_motion_back(kin, profile):
    cfg = profile.safety_config(workspace_max=(0.25, 0.3, 0.45))
    safety = SafetyFilter(cfg, kin)
    p = kin.tool_pose(READY)[:3, 3]
    assert p[0] > 0.25  # READY is outside this smaller box
    jac = kin.jacobian(READY, "plug_tip_link")[:3]
    outward = np.linalg.lstsq(jac, np.array([0.05, 0.0, 0.0]), rcond=None)[0]
    out = safety.filter(READY, outward)
    assert "workspace:x_max" in out.events
    assert kin.tool_pose(READY + out.velocity * cfg.hold_time_s)[0, 3] <= p[0] + 1e-4
    inward = safety.filter(READY, -outward)
    assert not any(e.startswith("workspace") for e in inward.events)


def test_random_commands_keep_the_tip_in_the_box(safety, kin):
    rng = np.random.default_rng(2)
    q = READY.copy()
    lo, hi = np.array(safety.config.workspace_min), np.array(safety.config.workspace_max)
    for _ in range(200):
        out = safety.filter(q, rng.uniform(-1.5, 1.5, size=5))
        q = q + out.velocity * safety.config.hold_time_s
        p = kin.tool_pose(q)[:3, 3]
        assert np.all(p >= lo - 2e-3) and np.all(p <= hi + 2e-3), p


def test_filter_rejects_mismatched_joint_order(kin, profile):
    cfg = profile.safety_config(joint_names=("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError):
        SafetyFilter(cfg, kin)


def test_deadman():
    deadman = Deadman(0.5)
    assert deadman.expired(0.0)  # never fed
    deadman.feed(10.0)
    assert not deadman.expired(10.4)
    assert deadman.expired(10.51)
    assert deadman.age(10.2) == pytest.approx(0.2)
    deadman.reset()
    assert deadman.expired(10.1)
    with pytest.raises(ValueError):
        Deadman(0.0)


HUGE = 10**400  # a Python int no float can hold


@pytest.mark.parametrize("qdot, event", [
    ([HUGE] * 5, "non_finite"), ([0.1, -HUGE, 0, 0, 0], "non_finite"),
    (np.full(5, 1e308, dtype=np.longdouble) * 10, "non_finite"),
    (np.zeros((1, 5)), "bad_shape"), (np.zeros((5, 1)), "bad_shape"), (["0.1"] * 5, "bad_shape"),
    ([True] * 5, "bad_shape"), ([1 + 2j] * 5, "bad_shape"), ({"waist": 0.1}, "bad_shape"),
    (object(), "bad_shape"), ([[0.1], [0.1, 0.2]], "bad_shape"), (b"\x00" * 5, "bad_shape"),
    ([0.1, None, 0, 0, 0], "bad_shape"),
])
def test_filter_is_total(safety, qdot, event):
    # Before: [10**400]*5 raised OverflowError; a (1, 5) array and a list of strings were accepted.
    out = safety.filter(READY, qdot)
    assert out.events == (event,)
    assert np.array_equal(out.velocity, np.zeros(5))


@pytest.mark.parametrize("q", [[HUGE] * 5, np.zeros((1, 5)), ["0"] * 5, None, {"q": 0}])
def test_a_malformed_joint_state_stops_the_arm(safety, q):
    out = safety.filter(q, np.full(5, 0.1))
    assert out.events in (("non_finite_state",), ("bad_shape",))
    assert np.array_equal(out.velocity, np.zeros(5))


# Found by sampling full-speed commands at random poses inside the box: the old filter checked only
# the end of the hold, and straight joint motion bulged out of the box on the way (by 2.3 to 31 mm).
BULGES = [
    ([-0.9598, -0.5062, 0.8781, 0.0411, 2.6377], [-1.18, 0.513, -1.3465, 1.6829, -3.031]),
    ([-0.5135, 0.6718, -0.3294, -1.0025, 0.113], [2.9207, -0.5081, -1.9402, 2.1562, -0.7526]),
    ([2.739, -1.6742, -0.6755, -0.4308, 1.6006], [0.7442, 0.1943, -1.3558, 2.7128, -1.6753]),
    ([2.8379, -1.3693, -1.4088, -1.3582, 2.5431], [-2.8523, -0.6097, 3.0832, 2.9573, 0.8653]),
]


def swept_path(kin, q, velocity, hold_time_s, samples=401):
    s = np.linspace(0.0, 1.0, samples)[:, None]
    return np.array([kin.tool_pose(x)[:3, 3] for x in np.asarray(q) + s * velocity * hold_time_s])


@pytest.mark.parametrize("q, qdot", BULGES)
def test_the_swept_path_of_the_hold_stays_in_the_box(safety, kin, q, qdot):
    cfg = safety.config
    lo, hi = np.array(cfg.workspace_min), np.array(cfg.workspace_max)
    assert np.all(kin.tool_pose(np.array(q))[:3, 3] >= lo) and np.all(kin.tool_pose(np.array(q))[:3, 3] <= hi)
    out = safety.filter(np.array(q), np.array(qdot))
    path = swept_path(kin, q, out.velocity, cfg.hold_time_s)
    assert np.all(path >= lo - cfg.path_tolerance_m) and np.all(path <= hi + cfg.path_tolerance_m)
    assert any(e.startswith("workspace:") for e in out.events)


def test_many_positions_match_forward_kinematics(kin):
    qs = np.random.default_rng(3).uniform(-3, 3, size=(20, 5))
    expected = np.array([kin.tool_pose(q)[:3, 3] for q in qs])
    assert np.allclose(kin.positions(qs, "plug_tip_link"), expected, atol=1e-12)
    # the reach bounds the tip's distance from every joint axis (what the path check relies on)
    for q in qs:
        jac = kin.jacobian(q, "plug_tip_link")[:3]
        assert np.all(np.linalg.norm(jac, axis=0) <= kin.reach("plug_tip_link"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), None, "1.0", HUGE])
def test_a_non_finite_feed_never_disables_the_deadman(bad):
    # Before: feed(nan) or feed(inf) made `now - last` never exceed the period: disabled for good.
    deadman = Deadman(0.5)
    assert deadman.feed(10.0)
    assert not deadman.feed(bad)
    assert not deadman.expired(10.4)
    assert deadman.expired(10.51)
    assert deadman.expired(bad)


def test_a_clock_step_backwards_expires_the_deadman_at_once():
    # Before: after the clock stepped back, `now - last` was negative for as long as the step: a
    # 0.2 rad/s command kept going for 10 s.
    deadman = Deadman(0.5)
    deadman.feed(100.0)
    assert not deadman.expired(100.3)
    assert deadman.expired(90.0)  # sim-time reset / NTP step
    assert deadman.expired(90.1)  # stays expired: nothing fresh since
    assert deadman.age(90.1) == float("inf")
    assert deadman.feed(90.2) and not deadman.expired(90.6) and deadman.expired(90.71)
    # a step back that stays above the last feed is a step back too
    deadman.feed(50.0)
    assert not deadman.expired(50.4)
    assert deadman.expired(50.1)


def test_a_clock_step_forwards_expires_the_deadman_early():
    deadman = Deadman(0.5)
    deadman.feed(1.0)
    assert deadman.expired(61.0)
