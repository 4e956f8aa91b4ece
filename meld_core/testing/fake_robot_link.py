"""A deterministic `RobotLink` on a virtual clock: a kinematic arm, two cameras and a rig.

Time only moves when the env sleeps (`sleep_until`) or when a scripted delay is added
(`policy_delay`), so timing tests are exact and instant. Cameras produce a frame at every multiple
of 1/camera_hz (stamp = capture time), the joint state is published at joint_state_hz with the
arm's position integrated from the commanded velocities. Inputs can be silenced from a given time
to test the staleness rules.
"""

from __future__ import annotations

import math

import numpy as np


class FakeRobotLink:
    """Implements `meld_core.bridge.remote_env.RobotLink`."""

    def __init__(
        self,
        num_joints: int = 5,
        camera_hz: float = 30.0,
        joint_state_hz: float = 100.0,
        image_shape: tuple[int, int] = (48, 64),
        home: np.ndarray | None = None,
        home_duration_s: float = 1.0,
        rig_duration_s: float = 2.0,
        start_time: float = 1000.0,
    ) -> None:
        self.t = start_time
        self.camera_hz = camera_hz
        self.joint_state_hz = joint_state_hz
        self.image_shape = image_shape
        self.home = np.zeros(num_joints) if home is None else np.asarray(home, dtype=float)
        self.q = self.home.copy()
        self.qdot = np.zeros(num_joints)
        self.home_duration_s = home_duration_s
        self.rig_duration_s = rig_duration_s
        self.rig = (0.0, 0.0)
        self.commands: list[tuple[float, np.ndarray]] = []  # (time, qdot) of every send_velocity
        self.homes = 0
        self.rig_moves: list[tuple[float, float]] = []
        self.silenced: dict[str, float] = {}  # input name -> time after which it stops publishing
        self.success: bool | None = None
        self.fail_home = False

    # ----------------------------------------------------------------- clock
    def now(self) -> float:
        return self.t

    def _advance(self, t: float) -> None:
        if t > self.t:
            self.q = self.q + self.qdot * (t - self.t)
            self.t = t

    def sleep_until(self, t: float) -> None:
        self._advance(t)

    def policy_delay(self, seconds: float) -> None:
        """Time spent outside the env (e.g. the policy's forward pass)."""
        self._advance(self.t + seconds)

    # ----------------------------------------------------------------- inputs
    def _last_tick(self, hz: float, name: str) -> float | None:
        t = self.t
        if name in self.silenced:
            t = min(t, self.silenced[name])
        stamp = math.floor(t * hz + 1e-9) / hz
        return stamp if stamp > 0 else None

    def latest_image(self, camera: str) -> tuple[np.ndarray, float] | None:
        stamp = self._last_tick(self.camera_hz, camera)
        if stamp is None:
            return None
        h, w = self.image_shape
        image = np.zeros((h, w, 3), np.uint8)
        image[..., 0 if camera == "scene" else 2] = 200
        image[..., 1] = int(stamp * self.camera_hz) % 256
        return image, stamp

    def latest_joint_state(self) -> tuple[np.ndarray, float] | None:
        stamp = self._last_tick(self.joint_state_hz, "joint_state")
        if stamp is None:
            return None
        return self.q - self.qdot * (self.t - stamp), stamp

    def latest_success(self) -> tuple[bool, float] | None:
        if self.success is None:
            return None
        stamp = self._last_tick(10.0, "success")
        return (self.success, stamp) if stamp is not None else None

    # ----------------------------------------------------------------- outputs
    def send_velocity(self, qdot: np.ndarray) -> None:
        self.qdot = np.asarray(qdot, dtype=float).copy()
        self.commands.append((self.t, self.qdot.copy()))

    def stop_arm(self) -> None:
        self.qdot = np.zeros_like(self.qdot)

    def home_arm(self, timeout_s: float) -> None:
        from meld_core.bridge.remote_env import RobotTimeoutError

        self.qdot = np.zeros_like(self.qdot)
        if self.fail_home:
            self._advance(self.t + timeout_s)
            raise RobotTimeoutError("fake arm: homing timed out")
        self._advance(self.t + self.home_duration_s)
        self.q = self.home.copy()
        self.homes += 1

    def move_rig(self, rotation_deg: float, translation_mm: float, timeout_s: float) -> None:
        self._advance(self.t + self.rig_duration_s)
        self.rig = (rotation_deg, translation_mm)
        self.rig_moves.append(self.rig)
