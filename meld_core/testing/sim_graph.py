"""The ROS graph of `sim.launch.py` without ROS, on a virtual clock: a `RobotLink` for CI.

    link = SimGraphLink(WidowXInsertionEnv(cfg), cfg.control_hz)
    env = remote_env_factory(link, RemoteEnvConfig())(run_config)   # what agent_node builds

`SimGraphLink` wires the same pieces the launch file starts, in the same way, but calls them
directly: `SimRobot` (sim_node: physics at the control rate, holding the last velocity, camera
frames, the rig at finite speed), `ArmBridge` (arm_node: velocity mode, safety filter, deadman,
home servo at `tick_hz`, a heartbeat per tick) and `ArmGuard` (arm_guard_node: zeros when the
heartbeat stops while the arm moves). `kill_arm_node()` is `kill -9` of arm_node. Time advances
only inside `sleep_until` / `home_arm` / `move_rig`, event by event (physics steps, bridge and
guard ticks, camera frames, rig updates), so a whole trial runs in the time the physics and
rendering take, and timing is reproducible.
"""

from __future__ import annotations

import math

import numpy as np

from meld_core.bridge.arm_bridge import ArmBridge, ArmBridgeConfig
from meld_core.bridge.arm_guard import ArmGuard, ArmGuardConfig
from meld_core.bridge.remote_env import RobotTimeoutError
from meld_core.bridge.sim_robot import SimEnvLike, SimRobot, SimRobotConfig
from meld_core.robot.profile import RobotProfile


class SimGraphLink:
    """Implements `meld_core.bridge.remote_env.RobotLink` over SimRobot + ArmBridge."""

    def __init__(
        self,
        env: SimEnvLike,
        control_hz: float,
        *,
        bridge_config: ArmBridgeConfig | None = None,
        sim_config: SimRobotConfig | None = None,
        profile: RobotProfile | None = None,
        guard_config: ArmGuardConfig | None = None,
        start_time: float = 100.0,
    ) -> None:
        self.robot = SimRobot(sim_config or SimRobotConfig(), env)
        self.bridge_config = bridge_config or ArmBridgeConfig()
        # arm_node builds its profile from the URDF and config/widowx_profile.yaml, as the env did
        self.bridge = ArmBridge(self.bridge_config, profile or RobotProfile.load())
        self.joints = self.bridge.joint_names
        self.guard = ArmGuard(guard_config or ArmGuardConfig(), self.joints)
        self.arm_node_alive = True
        self._last_sent = np.zeros(len(self.joints))  # what arm_node last published (its heartbeat)
        self.t = start_time
        self._periods = {
            "physics": 1.0 / control_hz,
            "bridge": 1.0 / self.bridge_config.tick_hz,
            "guard": 1.0 / self.guard.config.tick_hz,
            "camera": 1.0 / self.robot.config.camera_hz,
            "joint_state": 1.0 / self.robot.config.joint_state_hz,
            "rig": 0.1,
        }
        self._next = {name: start_time + period for name, period in self._periods.items()}
        self._camera_stamp: float | None = None
        self._joint_state: tuple[np.ndarray, float] | None = None
        # arm_node at start-up: velocity mode through set_operating_modes, then zeros at once
        request = self.bridge.operating_mode_request()
        if self.robot.set_operating_mode(request["name"], request["mode"]):
            self.bridge.velocity_mode_set()
            self._arm_node_tick()
        self._publish_joint_state()

    # ----------------------------------------------------------------- the event loop
    def _publish_joint_state(self) -> None:
        q, qdot = self.robot.joint_state()
        self._joint_state = (q, self.t)
        if self.arm_node_alive:
            self.bridge.on_joint_state(self.joints, q, self.t)
        self.guard.on_joint_state(self.joints, qdot, self.t)

    def _forward(self, velocity: np.ndarray | None) -> None:
        """A command on xs_sdk's commands/joint_group (seen by the simulated driver and the guard)."""
        if velocity is not None:
            self.robot.joint_group_command(self.bridge_config.group, velocity.tolist())
            self.guard.on_group_command(self.bridge_config.group, velocity, self.t)

    def _arm_node_tick(self) -> None:
        velocity = self.bridge.tick(self.t)
        if velocity is not None:
            self._last_sent = velocity
        self._forward(velocity)
        self.guard.on_heartbeat(self._last_sent, self.t)

    def kill_arm_node(self) -> None:
        """`kill -9 arm_node`: no more ticks, heartbeats or zeros on exit; commands go nowhere."""
        self.arm_node_alive = False

    def _run_until(self, t_end: float) -> None:
        while True:
            name = min(self._next, key=self._next.get)
            t = self._next[name]
            if t > t_end:
                break
            self.t = t
            if name == "physics":
                self.robot.advance()
            elif name == "bridge":
                if self.arm_node_alive:
                    self._arm_node_tick()
            elif name == "guard":
                self._forward(self.guard.tick(t))
            elif name == "camera":
                self._camera_stamp = t
            elif name == "joint_state":
                self._publish_joint_state()
            else:
                self.robot.rig_update(t)
            self._next[name] = t + self._periods[name]
        self.t = max(self.t, t_end)

    # ----------------------------------------------------------------- RobotLink
    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self._run_until(t)

    def latest_image(self, camera: str) -> tuple[np.ndarray, float] | None:
        if self._camera_stamp is None:
            return None
        return self.robot.images()[camera], self._camera_stamp

    def latest_joint_state(self) -> tuple[np.ndarray, float] | None:
        return self._joint_state

    def latest_success(self) -> tuple[bool, float] | None:
        return None

    def send_velocity(self, qdot: np.ndarray) -> None:
        if self.arm_node_alive and self.bridge.on_command(self.joints, np.asarray(qdot, dtype=float), self.t):
            self._arm_node_tick()

    def stop_arm(self) -> None:
        self.send_velocity(np.zeros(len(self.joints)))

    def home_arm(self, timeout_s: float) -> None:
        self.bridge.start_home(self.t)
        deadline = self.t + timeout_s
        while not self.bridge.home_done.is_set() and self.t < deadline:
            self._run_until(self.t + 0.1)
        if not self.bridge.home_result:
            raise RobotTimeoutError(f"simulated arm did not reach home within {timeout_s:.0f} s")

    def move_rig(self, rotation_deg: float, translation_mm: float, timeout_s: float) -> None:
        self.robot.rig_goal_request(rotation_deg, translation_mm, self.t)
        deadline = self.t + timeout_s
        while self.robot.rig_state != "idle" and self.t < deadline:
            self._run_until(self.t + 0.1)
        if self.robot.rig_state != "idle" or not (
            math.isclose(self.robot.rig_position[0], rotation_deg, abs_tol=1e-6)
            and math.isclose(self.robot.rig_position[1], translation_mm, abs_tol=1e-6)
        ):
            raise RobotTimeoutError(f"simulated rig did not reach {rotation_deg}, {translation_mm}")
