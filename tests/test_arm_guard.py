"""The arm guard (arm_guard_node's logic): zeros to xs_sdk when arm_node goes silent while the arm moves;
and the simulated sim.launch.py graph with arm_node killed (`kill -9`) while the waist turns."""

import numpy as np
import pytest

from meld_core.bridge.arm_guard import ArmGuard, ArmGuardConfig

JOINTS = ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")
WAIST = [0.3, 0.0, 0.0, 0.0, 0.0]
ZERO = [0.0] * 5


def run(guard, t0, t1, dt=0.02, beat_until=None, velocity=WAIST, measured=None):
    """Tick the guard from t0 to t1 (heartbeats every 50 ms until `beat_until`); feed its own zeros
    back as the wire does. Returns the times at which it published zeros."""
    sent = []
    t = t0
    while t <= t1 + 1e-9:
        if beat_until is not None and t <= beat_until and round(t / 0.05, 6).is_integer():
            guard.on_heartbeat(velocity, t)
        if measured is not None:
            guard.on_joint_state(JOINTS, measured(t), t)
        zeros = guard.tick(t)
        if zeros is not None:
            assert zeros.tolist() == ZERO
            sent.append(round(t, 6))
            guard.on_group_command("arm", zeros, t)
        t = round(t + dt, 6)
    return sent


def test_a_silent_arm_node_gets_zeros_within_the_silence_period_plus_a_tick():
    guard = ArmGuard(ArmGuardConfig(silence_s=0.25, tick_hz=50.0, zero_repeats=3), JOINTS)
    sent = run(guard, 0.0, 2.0, beat_until=1.0)
    assert sent[0] > 1.0 + 0.25 and sent[0] <= 1.0 + 0.25 + 0.02 + 1e-9
    assert len(sent) == 3 and guard.trips == 1  # repeated, then quiet: nothing measured moves
    assert guard.status(2.0).level.name == "ERROR"


def test_zeros_continue_while_the_arm_is_measured_moving():
    guard = ArmGuard(ArmGuardConfig(zero_repeats=2), JOINTS)
    # xs_sdk reports the waist still turning until t = 1.6 (e.g. the first zeros were lost)
    sent = run(guard, 0.0, 2.5, beat_until=1.0, measured=lambda t: WAIST if t < 1.6 else ZERO)
    assert sent[0] <= 1.0 + 0.25 + 0.02 + 1e-9 and 1.58 <= sent[-1] < 1.62
    assert guard.trips == 1


def test_no_zeros_without_heartbeat_ever_or_while_the_arm_stands_still():
    # Never armed: arm_node never reached velocity mode (zeros would mean "go to 0 rad" in position mode).
    guard = ArmGuard(ArmGuardConfig(), JOINTS)
    guard.on_group_command("arm", WAIST, 0.0)
    assert run(guard, 0.0, 2.0) == [] and guard.exit_command(2.0) is None
    # Armed, arm_node quits while the arm stands still (its last command was zeros): nothing to stop.
    guard = ArmGuard(ArmGuardConfig(), JOINTS)
    assert run(guard, 0.0, 2.0, beat_until=1.0, velocity=ZERO, measured=lambda t: ZERO) == []
    assert guard.silent(2.0) and guard.trips == 0 and guard.exit_command(2.0) is None


def test_a_returning_heartbeat_stands_the_guard_down():
    guard = ArmGuard(ArmGuardConfig(zero_repeats=1000), JOINTS)
    sent = run(guard, 0.0, 1.5, beat_until=1.0)
    assert sent and guard.status(1.5).level.name == "ERROR"
    guard.on_heartbeat(WAIST, 1.52)  # arm_node respawned
    assert guard.tick(1.54) is None and guard.status(1.54).level.name == "OK"


def test_exit_sends_zeros_when_the_arm_may_be_moving():
    guard = ArmGuard(ArmGuardConfig(), JOINTS)
    guard.on_heartbeat(WAIST, 0.0)
    # kill -9 of arm_node shuts the launch down at once: the guard is stopped before silence_s passed
    assert guard.tick(0.1) is None and guard.exit_command(0.1).tolist() == ZERO


def test_commands_of_other_groups_or_lengths_are_ignored():
    guard = ArmGuard(ArmGuardConfig(), JOINTS)
    guard.on_heartbeat(ZERO, 0.0)
    guard.on_group_command("gripper", [1.0], 0.1)
    guard.on_group_command("arm", [1.0, 2.0], 0.1)
    assert run(guard, 0.1, 1.0) == []


def test_config_is_validated():
    with pytest.raises(ValueError, match="two guard ticks"):
        ArmGuardConfig(silence_s=0.03, tick_hz=50.0)
    with pytest.raises(ValueError, match="zero_repeats"):
        ArmGuardConfig(zero_repeats=0)
    with pytest.raises(ValueError):
        ArmGuardConfig(robot_name="")


@pytest.mark.render
def test_killing_arm_node_in_the_simulated_graph_stops_the_arm():
    # Before the guard: the simulated xs_sdk (like the real one) kept the last velocity: the waist
    # went on turning at 0.3 rad/s after arm_node died.
    pytest.importorskip("mujoco")
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
    from meld_core.testing.sim_graph import SimGraphLink

    cfg = WidowXInsertionConfig(episode_length=4, num_train_tasks=1, num_eval_tasks=1)
    sim = WidowXInsertionEnv(cfg, seed=0)
    try:
        link = SimGraphLink(sim, cfg.control_hz)
        received = []
        command = link.robot.joint_group_command
        link.robot.joint_group_command = lambda name, cmd: (received.append((link.t, list(cmd))),
                                                            command(name, cmd))[1]
        t = link.now()
        for _ in range(4):  # the agent commands 0.3 rad/s on the waist at 3.3 Hz
            link.send_velocity(np.array(WAIST))
            t += 1 / 3.3
            link.sleep_until(t)
        assert link.robot.command[0] == pytest.approx(0.3)
        killed_at = link.now()
        link.kill_arm_node()
        link.send_velocity(np.array(WAIST))  # the agent goes on; nobody listens
        link.sleep_until(killed_at + 2.0)
        zeros = [at for at, cmd in received if at > killed_at and cmd == ZERO]
        assert zeros, f"no zeros after arm_node died: xs_sdk holds {link.robot.command.tolist()} rad/s"
        assert zeros[0] - killed_at <= 0.5
        assert link.robot.command.tolist() == ZERO
        q1, _ = link.robot.joint_state()
        link.sleep_until(killed_at + 3.0)
        q2, _ = link.robot.joint_state()
        assert abs(q2[0] - q1[0]) < 1e-3  # the waist stands still
    finally:
        sim.close()


def test_arm_node_starts_with_zeros_once_velocity_mode_is_confirmed():
    # arm_node ticks its bridge right after set_operating_modes answered: a servo still holding the
    # last velocity of a killed arm node stops before anything else happens; never in position mode.
    from meld_core.bridge.arm_bridge import ArmBridge, ArmBridgeConfig
    from meld_core.robot.profile import RobotProfile

    bridge = ArmBridge(ArmBridgeConfig(), RobotProfile.load())
    assert bridge.tick(0.0) is None
    bridge.velocity_mode_set()
    assert bridge.tick(0.0).tolist() == ZERO
