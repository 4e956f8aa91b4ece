"""The waits of the agent's robot link, without ROS: first inputs at start-up, rig arrival, and whether
the robot graph is gone (after a stop request).

    wait_for_inputs(link, services_ready, timeout_s=60.0, should_stop=lambda: stopping)
    wait_for_rig((3.0, -4.0), read_rig, tolerance=(0.2, 0.5), sent_at=link.now(), timeout_s=30.0)

The ROS link (`meld_ros.ros_env.RosRobotLink`) and the agent node only supply callables that read
their newest messages; what counts as "there" and every deadline live here, where tests reach them.
Both waits poll on the monotonic clock (deadlines hold whatever the ROS clock does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from meld_core.bridge.remote_env import CAMERAS, RobotLink, RobotTimeoutError

Sample = tuple[Any, float]  # (value, stamp): a link's newest message of one input


def missing_inputs(link: RobotLink) -> list[str]:
    """The inputs (cameras, joint state) that have not delivered a message yet."""
    missing = [camera for camera in CAMERAS if link.latest_image(camera) is None]
    if link.latest_joint_state() is None:
        missing.append("joint_state")
    return missing


def inputs_silent(link: RobotLink, silent_s: float) -> bool:
    """Whether the robot graph looks gone: no joint state, or none for `silent_s` (xs_sdk and
    sim_node publish it at 50-100 Hz). After a stop request the agent then aborts its waits at once
    instead of giving the running episode its grace period to finish."""
    sample = link.latest_joint_state()
    return sample is None or link.now() - sample[1] > silent_s


def wait_for_inputs(link: RobotLink, services_ready: Callable[[], bool], timeout_s: float, *,
                    should_stop: Callable[[], bool] = lambda: False, poll_s: float = 0.1,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> bool:
    """Block until both cameras and the joint state delivered a message and `services_ready()` (the
    arm node's home service); True then, False when `should_stop()` became true first. Raises
    RobotTimeoutError naming what is missing after `timeout_s`."""
    deadline = clock() + timeout_s
    while True:
        if should_stop():
            return False
        missing = missing_inputs(link)
        if not missing and services_ready():
            return True
        if clock() >= deadline:
            raise RobotTimeoutError(
                f"no {', '.join(missing) or 'arm home service (meld/arm/home)'} within {timeout_s:.0f} s: "
                "are the cameras, xs_sdk (or sim_node) and arm_node running, in the agent's namespace?")
        sleep(poll_s)


def rig_arrived(goal: tuple[float, float], tolerance: tuple[float, float], sent_at: float,
                pose: Sample | None, state: Sample | None) -> bool:
    """Whether the rig reports `idle` at `goal` (rotation_deg, translation_mm) within `tolerance`
    (deg, mm), with pose and state both newer than the goal (`sent_at`). A rig that reports `error`
    or `stopped` will not get there: RobotTimeoutError."""
    if state is not None and state[0] in ("error", "stopped"):
        raise RobotTimeoutError(f"reset rig is {state[0]}; see /diagnostics, call meld/rig/home")
    if pose is None or state is None or pose[1] <= sent_at or state[1] <= sent_at:
        return False
    (rotation, translation), _ = pose
    return (state[0] == "idle" and abs(rotation - goal[0]) <= tolerance[0]
            and abs(translation - goal[1]) <= tolerance[1])


def wait_for_rig(goal: tuple[float, float], read: Callable[[], tuple[Sample | None, Sample | None]], *,
                 tolerance: tuple[float, float], sent_at: float, timeout_s: float,
                 check_abort: Callable[[], None] = lambda: None, poll_s: float = 0.02,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll `read()` -> (newest rig pose sample, newest rig state sample) until `rig_arrived`;
    RobotTimeoutError at `timeout_s`. `check_abort()` may raise to give up early (node shutdown)."""
    deadline = clock() + timeout_s
    last = "no rig state received"
    while clock() < deadline:
        check_abort()
        pose, state = read()
        if rig_arrived(goal, tolerance, sent_at, pose, state):
            return
        if pose is not None and state is not None and pose[1] > sent_at:
            last = f"rig {state[0]} at {pose[0][0]:.2f} deg, {pose[0][1]:.2f} mm"
        sleep(poll_s)
    raise RobotTimeoutError(
        f"reset rig did not reach {goal[0]:.2f} deg, {goal[1]:.2f} mm within {timeout_s:.0f} s ({last}); "
        "is reset_rig_node (or sim_node) active, in the agent's namespace?")
