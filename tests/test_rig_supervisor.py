"""reset_rig_node's state machine: lifecycle transitions -> reset-rig client calls; pose mapping."""

import math
import threading
import time

import pytest

from meld_core.hardware.diagnostics import DiagLevel
from meld_core.hardware.rig_supervisor import (
    RigNodeConfig,
    RigNodeState,
    RigSupervisor,
    RigSupervisorError,
    pose_from_rig,
    rig_from_pose,
)

fake_rig = pytest.importorskip("meld_core.testing.fake_reset_rig")


def make(motion_time_s=0.0, **cfg):
    rigs = []

    def factory(config):
        from meld_core.hardware.reset_rig import ResetRigConfig

        rigs.append(fake_rig.FakeResetRig(ResetRigConfig(port="fake"), motion_time_s=motion_time_s))
        return rigs[-1]

    return RigSupervisor(RigNodeConfig(driver="fake", **cfg), factory), rigs


def names(rig):
    return [c[0] for c in rig.calls]


def test_lifecycle_maps_onto_client_calls():
    sup, rigs = make()
    assert sup.state == RigNodeState.UNCONFIGURED and sup.position() is None
    sup.configure()
    rig = rigs[0]
    assert sup.state == RigNodeState.INACTIVE and names(rig) == ["connect"]
    sup.activate()
    assert sup.state == RigNodeState.IDLE and names(rig)[-1] == "home"
    sup.move(3.0, -4.0)
    assert sup.position() == pytest.approx((3.0, -4.0))
    assert sup.moves == 1 and sup.goal_seq == 1
    sup.deactivate()
    assert sup.state == RigNodeState.INACTIVE and names(rig)[-1] == "stop"
    sup.cleanup()
    assert sup.state == RigNodeState.UNCONFIGURED and names(rig)[-1] == "disconnect"


def test_goals_need_an_active_rig_and_respect_the_limits():
    sup, _ = make(rotation_limit_deg=8.0, translation_limit_mm=10.0)
    with pytest.raises(RigSupervisorError, match="unconfigured"):
        sup.move(1.0, 1.0)
    sup.configure()
    with pytest.raises(RigSupervisorError, match="inactive"):
        sup.move(1.0, 1.0)
    sup.activate()
    with pytest.raises(RigSupervisorError, match="rotation"):
        sup.move(9.0, 0.0)
    with pytest.raises(RigSupervisorError, match="translation"):
        sup.move(0.0, -11.0)
    with pytest.raises(RigSupervisorError, match="finite"):
        sup.move(math.nan, 0.0)
    assert sup.state == RigNodeState.IDLE


def test_configure_failure_reports_error():
    sup, _ = make()
    sup._factory = lambda cfg: (_ for _ in ()).throw(OSError("no such port /dev/ttyACM9"))
    with pytest.raises(OSError):
        sup.configure()
    assert sup.state == RigNodeState.UNCONFIGURED and "ttyACM9" in sup.last_error  # configure may be retried
    assert sup.status().level == DiagLevel.ERROR
    sup._factory = make()[0]._factory
    sup.configure()
    assert sup.state == RigNodeState.INACTIVE


def test_a_failed_move_goes_to_error_and_home_recovers():
    sup, rigs = make()
    sup.configure()
    sup.activate()
    rigs[0].fail_next("TIMEOUT")
    with pytest.raises(Exception, match="did not finish"):
        sup.move(1.0, 1.0)
    assert sup.state == RigNodeState.ERROR and sup.failures == 1
    with pytest.raises(RigSupervisorError):
        sup.move(1.0, 1.0)
    sup.home()
    assert sup.state == RigNodeState.IDLE
    sup.move(1.0, 1.0)


def test_stop_from_another_thread_interrupts_a_move_and_latches():
    sup, rigs = make(motion_time_s=2.0)
    sup.configure()
    rigs[0].motion_time_s = 0.0
    sup.activate()
    rigs[0].motion_time_s = 2.0
    errors = []

    def move():
        try:
            sup.move(5.0, 5.0)
        except Exception as exc:
            errors.append(exc)

    worker = threading.Thread(target=move)
    worker.start()
    deadline = time.monotonic() + 2.0
    while sup.state != RigNodeState.MOVING and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sup.stop()
    worker.join(timeout=3.0)
    assert not worker.is_alive() and time.monotonic() - started < 1.5
    assert errors and sup.state == RigNodeState.STOPPED
    with pytest.raises(RigSupervisorError, match="home"):
        sup.move(1.0, 1.0)
    rigs[0].motion_time_s = 0.0
    sup.home()
    assert sup.state == RigNodeState.IDLE


def test_shutdown_from_any_state_stops_and_closes():
    sup, rigs = make()
    sup.configure()
    sup.activate()
    sup.shutdown()
    assert names(rigs[0])[-2:] == ["stop", "disconnect"] and sup.state == RigNodeState.UNCONFIGURED


@pytest.mark.parametrize("rotation,translation", [(0.0, 0.0), (7.5, -3.2), (-8.0, 10.0)])
def test_pose_round_trip(rotation, translation):
    position, orientation = pose_from_rig(rotation, translation)
    assert position == pytest.approx((translation / 1000.0, 0.0, 0.0))
    assert rig_from_pose(position, orientation) == pytest.approx((rotation, translation))


def test_pose_with_other_motion_is_refused():
    with pytest.raises(ValueError, match="x and rotates about z"):
        rig_from_pose((0.0, 0.01, 0.0), (0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        rig_from_pose((math.nan, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


def test_config_validation():
    with pytest.raises(ValueError):
        RigNodeConfig(driver="usb")
    with pytest.raises(ValueError):
        RigNodeConfig(move_timeout_s=0)


def test_make_rig_client_builds_the_configured_driver():
    from meld_core.hardware.reset_rig import ResetRig
    from meld_core.hardware.rig_supervisor import make_rig_client

    serial = make_rig_client(RigNodeConfig(port="/dev/meld_rig", baud=115200))
    assert isinstance(serial, ResetRig) and serial.config.port == "/dev/meld_rig"
    sup = RigSupervisor(RigNodeConfig(driver="fake", move_timeout_s=5.0), make_rig_client)
    sup.configure()
    sup.activate()
    sup.move(-2.0, 3.0)
    assert sup.position() == pytest.approx((-2.0, 3.0))
    sup.shutdown()


class _AnsweringRig(fake_rig.FakeResetRig):
    """The real firmware reports the aborted motion before it acknowledges STOP, so the moving thread
    sees its error while stop() is still waiting for its answer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.motion_failed = threading.Event()

    def move_to(self, *args, **kwargs):
        try:
            return super().move_to(*args, **kwargs)
        except Exception:
            self.motion_failed.set()
            raise

    def stop(self):
        state = super().stop()
        self.motion_failed.wait(timeout=2.0)
        time.sleep(0.05)  # the ack arrives after the move thread has handled the abort
        return state


def test_stop_during_a_move_ends_stopped_not_error_when_the_abort_arrives_first():
    # Before: the move thread recorded ERROR (stop() set STOPPED only after the firmware answered).
    rigs = []

    def factory(config):
        from meld_core.hardware.reset_rig import ResetRigConfig

        rigs.append(_AnsweringRig(ResetRigConfig(port="fake"), motion_time_s=0.0))
        return rigs[-1]

    sup = RigSupervisor(RigNodeConfig(driver="fake"), factory)
    sup.configure()
    sup.activate()
    rigs[0].motion_time_s = 5.0
    errors = []
    worker = threading.Thread(target=lambda: errors.append(_raised(lambda: sup.move(5.0, 5.0))))
    worker.start()
    deadline = time.monotonic() + 2.0
    while not rigs[0]._moving.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    sup.stop()
    worker.join(timeout=3.0)
    assert isinstance(errors[0], RigSupervisorError) and "interrupted by stop" in str(errors[0])
    assert sup.state == RigNodeState.STOPPED and sup.failures == 0 and not sup.last_error
    assert sup.status().level == DiagLevel.WARN
    rigs[0].motion_time_s = 0.0
    sup.home()
    assert sup.state == RigNodeState.IDLE


def _raised(call):
    try:
        call()
    except Exception as exc:
        return exc
    return None
