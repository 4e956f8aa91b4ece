"""ArmBridge (everything arm_node does): velocity mode, safety filter, deadman, home, stop, counters."""

import dataclasses

import numpy as np
import pytest

from meld_core.bridge.arm_bridge import ArmBridge, ArmBridgeConfig, ArmBridgeError, Mode, reorder
from meld_core.hardware.diagnostics import DiagLevel
from meld_core.robot.profile import RobotProfile

JOINTS = ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")
# A pose well inside the limits and the workspace box (plug tip in front of the robot, mid height).
Q0 = np.array([0.0, -0.3, 0.3, 0.4, 0.0])


@pytest.fixture(scope="module")
def profile():
    return RobotProfile.load()


def ready_bridge(profile, **overrides):
    bridge = ArmBridge(ArmBridgeConfig(**overrides), profile)
    bridge.velocity_mode_set()
    bridge.on_joint_state(JOINTS, Q0, now=0.0)
    return bridge


def test_operating_mode_request_is_group_velocity(profile):
    bridge = ArmBridge(ArmBridgeConfig(profile_acceleration=15), profile)
    assert bridge.operating_mode_request() == {
        "cmd_type": "group",
        "name": "arm",
        "mode": "velocity",
        "profile_type": "velocity",
        "profile_velocity": 0,
        "profile_acceleration": 15,
    }


def test_nothing_is_sent_before_velocity_mode(profile):
    bridge = ArmBridge(ArmBridgeConfig(), profile)
    bridge.on_joint_state(JOINTS, Q0, now=0.0)
    assert not bridge.on_command(JOINTS, [0.1] * 5, now=0.0)
    assert bridge.tick(0.0) is None
    assert bridge.shutdown_command() is None  # zeros in position mode would mean "go to 0 rad"
    assert bridge.rejected_commands == 1


def test_command_is_forwarded_once_then_only_on_change(profile):
    bridge = ready_bridge(profile)
    assert bridge.on_command(JOINTS, [0.1, 0.0, 0.0, 0.0, 0.0], now=0.0)
    first = bridge.tick(0.0)
    assert np.allclose(first, [0.1, 0, 0, 0, 0])
    bridge.on_joint_state(JOINTS, Q0, now=0.05)
    assert bridge.tick(0.05) is None  # same filtered output: nothing to send
    bridge.on_command(JOINTS, [0.1, 0.0, 0.0, 0.0, 0.0], now=0.3)
    assert bridge.tick(0.3) is not None  # a fresh command is always forwarded (3.3 Hz on the bus)


def test_commands_are_reordered_by_name(profile):
    bridge = ready_bridge(profile)
    bridge.on_command(list(reversed(JOINTS)), [0.0, 0.0, 0.0, 0.0, 0.2], now=0.0)
    assert np.allclose(bridge.tick(0.0), [0.2, 0, 0, 0, 0])


def test_bad_commands_are_refused_and_counted(profile):
    bridge = ready_bridge(profile)
    assert not bridge.on_command(JOINTS[:3], [0.1] * 3, now=0.0)
    assert not bridge.on_command([], [0.1] * 4, now=0.0)
    assert bridge.rejected_commands == 2


def test_safety_filter_applies_on_every_command(profile):
    bridge = ready_bridge(profile)
    bridge.on_command(JOINTS, [0.0, 5.0, 0.0, 0.0, 0.0], now=0.0)  # shoulder limit is 1 rad/s on the WX200
    sent = bridge.tick(0.0)
    assert abs(sent[1]) <= 1.0 + 1e-9
    assert bridge.events["velocity_clamp:shoulder"] == 1
    bridge.on_command(JOINTS, [np.nan, 0.1, 0.0, 0.0, 0.0], now=0.1)
    assert np.allclose(bridge.tick(0.1), 0.0)
    assert bridge.events["non_finite"] == 1
    assert "clamp:velocity_clamp:shoulder" in bridge.status(0.1).values


def test_held_command_is_braked_between_commands_as_the_joint_nears_its_limit(profile):
    bridge = ready_bridge(profile)
    upper = bridge.safety.config.upper[3]
    bridge.on_command(JOINTS, [0.0, 0.0, 0.0, 1.0, 0.0], now=0.0)
    assert bridge.tick(0.0)[3] == pytest.approx(1.0)
    # The wrist approaches its upper limit before the next 3.3 Hz command: the 20 Hz tick brakes it.
    near = Q0.copy()
    near[3] = upper - 0.05
    bridge.on_joint_state(JOINTS, near, now=0.1)
    braked = bridge.tick(0.1)
    assert braked is not None and 0.0 <= braked[3] < 0.5
    assert bridge.events["position_brake:wrist_angle"] >= 1


def test_deadman_sends_zeros_once_when_commands_stop(profile):
    bridge = ready_bridge(profile, deadman_period_s=0.5)
    bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=0.0)
    bridge.tick(0.0)
    for t in (0.1, 0.2, 0.3, 0.4, 0.5):
        bridge.on_joint_state(JOINTS, Q0, now=t)
        assert bridge.tick(t) is None
    bridge.on_joint_state(JOINTS, Q0, now=0.55)
    assert np.allclose(bridge.tick(0.55), 0.0)
    bridge.on_joint_state(JOINTS, Q0, now=0.6)
    assert bridge.tick(0.6) is None  # zeros already sent
    assert bridge.deadman_trips == 1
    assert bridge.status(0.6).level == DiagLevel.WARN
    bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=0.7)  # a fresh command re-arms it
    bridge.on_joint_state(JOINTS, Q0, now=0.7)
    assert bridge.tick(0.7)[0] == pytest.approx(0.2)


def test_an_expiring_zero_command_is_not_a_deadman_trip(profile):
    bridge = ready_bridge(profile, deadman_period_s=0.5)
    bridge.on_command(JOINTS, [0.0] * 5, now=0.0)
    bridge.tick(0.0)
    bridge.on_joint_state(JOINTS, Q0, now=1.0)
    assert bridge.tick(1.0) is None
    assert bridge.deadman_trips == 0 and bridge.mode == Mode.IDLE


def test_stale_joint_states_force_zeros(profile):
    bridge = ready_bridge(profile, joint_state_timeout_s=0.25)
    bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=0.0)
    bridge.tick(0.0)
    bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=0.3)
    assert np.allclose(bridge.tick(0.3), 0.0)  # the last joint state is 0.3 s old
    assert bridge.stale_state_stops == 1
    assert bridge.status(0.3).level == DiagLevel.ERROR


def test_home_servo_converges_and_reports(profile):
    home = (0.0, -0.2, 0.2, 0.3, 0.0)
    bridge = ready_bridge(dataclasses.replace(profile, home_q=home), home_gain=2.0, tick_hz=20.0)
    bridge.start_home(0.0)
    assert not bridge.on_command(JOINTS, [0.1] * 5, now=0.0)  # commands wait while homing
    q = Q0.copy()
    t = 0.0
    velocity = np.zeros(5)
    for _ in range(400):
        bridge.on_joint_state(JOINTS, q, now=t)
        out = bridge.tick(t)
        if out is not None:
            velocity = out
        if bridge.home_done.is_set():
            break
        q = q + velocity * 0.05
        t += 0.05
    assert bridge.home_done.is_set() and bridge.home_result is True
    assert np.allclose(q, home, atol=0.03)
    assert bridge.mode == Mode.IDLE


def test_home_times_out_when_the_arm_does_not_move(profile):
    bridge = ready_bridge(dataclasses.replace(profile, home_q=(0.5, 0, 0, 0, 0)), home_timeout_s=1.0)
    bridge.start_home(0.0)
    for t in np.arange(0.0, 1.2, 0.05):
        bridge.on_joint_state(JOINTS, Q0, now=t)  # never moves
        bridge.tick(t)
    assert bridge.home_done.is_set() and bridge.home_result is False
    assert bridge.mode == Mode.STOPPED


def test_stop_latches_zeros_until_home(profile):
    bridge = ready_bridge(profile)
    bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=0.0)
    bridge.tick(0.0)
    bridge.stop()
    assert np.allclose(bridge.tick(0.0), 0.0)
    assert not bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=0.1)
    bridge.start_home(0.2)
    assert bridge.mode == Mode.HOMING


def test_shutdown_sends_zeros_in_velocity_mode(profile):
    bridge = ready_bridge(profile)
    assert np.allclose(bridge.shutdown_command(), 0.0)


def test_shutdown_releases_a_waiting_home_request(profile):
    # arm_node's home service waits on home_done; at exit it must not hold the process for home_timeout_s.
    bridge = ready_bridge(profile)
    bridge.start_home(0.0)
    bridge.shutdown_command()
    assert bridge.home_done.is_set() and bridge.home_result is False


def test_reorder_errors():
    with pytest.raises(ArmBridgeError, match="missing"):
        reorder(["a", "b"], [1, 2], ["a", "c"], "x")
    with pytest.raises(ArmBridgeError, match="names but"):
        reorder(["a"], [1, 2], ["a"], "x")


@pytest.mark.parametrize(
    "bad",
    [
        dict(deadman_period_s=0.01),
        dict(tick_hz=0.0),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        ArmBridgeConfig(**bad)


def commanding_bridge(profile, t0=100.0, **overrides):
    bridge = ArmBridge(ArmBridgeConfig(**overrides), profile)
    bridge.velocity_mode_set()
    bridge.on_joint_state(JOINTS, Q0, now=t0)
    assert bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=t0)
    assert bridge.tick(t0)[0] == pytest.approx(0.2)
    return bridge


def run_ticks(bridge, times):
    """Joint states and ticks at `times` (as arm_node does); the last velocity sent."""
    sent = None
    for t in times:
        bridge.on_joint_state(JOINTS, Q0, now=t)
        out = bridge.tick(t)
        if out is not None:
            sent = out
    return sent


def test_a_clock_stepping_back_stops_the_arm_at_once(profile):
    # Before: the deadman compared signed differences: after a 10 s step back, 0.2 rad/s kept going
    # for 10 s with no deadman trip.
    bridge = commanding_bridge(profile)
    assert run_ticks(bridge, [100.05, 100.1]) is None  # still the command
    assert np.allclose(run_ticks(bridge, [90.15]), 0.0)  # the clock stepped back 10 s
    assert bridge.deadman_trips == 1
    assert run_ticks(bridge, np.arange(90.2, 100.5, 0.05)) is None  # zeros stay
    assert bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=100.5)  # a new command runs on the new time
    assert run_ticks(bridge, [100.5])[0] == pytest.approx(0.2)


def test_stale_joint_states_are_not_refreshed_by_a_clock_step(profile):
    bridge = commanding_bridge(profile, joint_state_timeout_s=0.25)
    bridge.on_command(JOINTS, [0.2, 0, 0, 0, 0], now=100.2)
    assert bridge.tick(100.2)[0] == pytest.approx(0.2)  # joint state 0.2 s old: fine
    # no more joint states; the clock steps back below the last one's stamp
    assert np.allclose(bridge.tick(99.0), 0.0)
    assert bridge.stale_state_stops == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_clock_never_disables_the_deadman(profile, bad):
    # Before: a command stamped NaN or inf fed the deadman `nan`: it never expired again.
    bridge = commanding_bridge(profile)
    assert bridge.on_command(JOINTS, [0.3, 0, 0, 0, 0], now=bad)  # stored, but it does not feed the deadman
    sent = run_ticks(bridge, [100.05, 100.1, 100.2, 100.3, 100.4])
    assert sent[0] == pytest.approx(0.3)  # within the period of the last valid command
    assert np.allclose(run_ticks(bridge, [100.5]), 0.0)  # 0.5 s after the last valid command
    assert bridge.deadman_trips == 1


def test_a_non_finite_command_stops_the_arm_and_does_not_feed_the_deadman(profile):
    # Before: a NaN command fed the deadman (issue 19, item 3).
    bridge = commanding_bridge(profile)
    assert not bridge.on_command(JOINTS, [np.nan, 0.1, 0, 0, 0], now=100.3)
    assert np.allclose(bridge.tick(100.3), 0.0)  # stops at once
    assert bridge.events["non_finite"] == 1 and bridge.rejected_commands == 1
    assert bridge.mode == Mode.COMMAND
    run_ticks(bridge, [100.35, 100.4, 100.5])
    assert bridge.mode == Mode.IDLE  # the deadman ran out 0.45 s after the last valid command (t=100)
    assert bridge.status(100.5).values["command_age_s"] == "0.500"


def test_zeros_reach_the_arm_within_half_a_second_of_the_last_valid_command(profile):
    # Before: deadman 0.5 s + a 50 ms tick: zeros up to 0.55 s after the last command (issue 19, item 3).
    cfg = ArmBridgeConfig()
    assert cfg.stop_bound_s <= 0.5 + 1e-12
    for phase in np.linspace(0.0, 0.05, 11, endpoint=False):  # where the command falls between ticks
        bridge = commanding_bridge(profile, t0=100.0 + phase)
        for t in 100.0 + np.arange(1, 40) / cfg.tick_hz:
            sent = run_ticks(bridge, [t])
            if sent is not None:
                break
        assert np.allclose(sent, 0.0) and bridge.deadman_trips == 1
        assert t - (100.0 + phase) <= cfg.stop_bound_s + 1e-9
