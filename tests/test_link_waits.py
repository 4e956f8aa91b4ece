"""The agent link's waits without ROS (meld_core.bridge.link_waits): first inputs at start-up and the
reset rig's arrival, with the tolerance from the agent's config (io.rig_tolerance_deg/_mm)."""

import pytest

from meld_core.bridge.link_waits import inputs_silent, rig_arrived, wait_for_inputs, wait_for_rig
from meld_core.bridge.remote_env import RemoteEnvConfig, RobotTimeoutError
from meld_core.testing.fake_robot_link import FakeRobotLink


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


def test_inputs_wait_returns_once_everything_arrived_and_names_what_is_missing():
    clock = Clock()
    link = FakeRobotLink()  # cameras and joint state publish from its start time on
    ready = iter([False, False, True])
    assert wait_for_inputs(link, lambda: next(ready), 5.0, clock=clock, sleep=clock.sleep)
    assert clock.t == pytest.approx(0.2)
    link.latest_image = lambda camera: None if camera == "wrist" else (None, 0.0)
    with pytest.raises(RobotTimeoutError, match=r"no wrist within 5 s"):
        wait_for_inputs(link, lambda: True, 5.0, clock=clock, sleep=clock.sleep)


def test_inputs_wait_gives_up_at_once_on_a_stop_request():
    clock = Clock()
    link = FakeRobotLink()
    link.latest_joint_state = lambda: None
    stop = iter([False, False, True])
    assert not wait_for_inputs(link, lambda: True, 60.0, should_stop=lambda: next(stop), clock=clock,
                               sleep=clock.sleep)
    assert clock.t < 1.0


def test_rig_arrival_needs_idle_new_messages_and_the_configured_tolerance():
    io = RemoteEnvConfig(rig_tolerance_deg=0.2, rig_tolerance_mm=0.5)
    tol = (io.rig_tolerance_deg, io.rig_tolerance_mm)
    goal, sent = (3.0, -4.0), 10.0
    assert rig_arrived(goal, tol, sent, ((3.15, -4.4), 10.5), ("idle", 10.5))
    assert not rig_arrived(goal, tol, sent, ((3.25, -4.0), 10.5), ("idle", 10.5))  # 0.25 deg off
    assert not rig_arrived(goal, tol, sent, ((3.0, -4.6), 10.5), ("idle", 10.5))  # 0.6 mm off
    assert not rig_arrived(goal, tol, sent, ((3.0, -4.0), 10.5), ("moving", 10.5))
    assert not rig_arrived(goal, tol, sent, ((3.0, -4.0), 9.9), ("idle", 10.5))  # pose from before the goal
    with pytest.raises(RobotTimeoutError, match="stopped"):
        rig_arrived(goal, tol, sent, None, ("stopped", 10.5))
    with pytest.raises(ValueError, match="rig_tolerance_mm"):
        RemoteEnvConfig(rig_tolerance_mm=0.0)


def test_rig_wait_polls_until_arrival_or_its_deadline():
    clock = Clock()
    states = iter([(None, None), (((1.0, 0.0), 1.0), ("moving", 1.0)), (((3.0, -4.0), 2.0), ("idle", 2.0))])
    wait_for_rig((3.0, -4.0), lambda: next(states), tolerance=(0.2, 0.5), sent_at=0.5, timeout_s=5.0,
                 clock=clock, sleep=clock.sleep)
    clock = Clock()
    with pytest.raises(RobotTimeoutError, match=r"did not reach 3.00 deg.*rig moving at 1.00 deg"):
        wait_for_rig((3.0, -4.0), lambda: (((1.0, 0.0), 1.0), ("moving", 1.0)), tolerance=(0.2, 0.5),
                     sent_at=0.5, timeout_s=1.0, clock=clock, sleep=clock.sleep)


def test_the_rig_node_has_no_tolerance_of_its_own():
    # One definition: the agent's io.rig_tolerance_* (the rig node's unused copies are gone).
    from meld_core.hardware.rig_supervisor import RigNodeConfig, RigSupervisor

    assert not any("tolerance" in name for name in RigNodeConfig.__dataclass_fields__)
    assert not hasattr(RigSupervisor, "arrived")


def test_the_graph_counts_as_gone_when_joint_states_stop():
    link = FakeRobotLink(joint_state_hz=100.0)
    link.sleep_until(link.now() + 0.5)
    assert not inputs_silent(link, 1.0)
    link.silenced["joint_state"] = link.now()  # xs_sdk / sim_node stopped with the launch
    link.sleep_until(link.now() + 0.9)
    assert not inputs_silent(link, 1.0)
    link.sleep_until(link.now() + 0.2)
    assert inputs_silent(link, 1.0)
