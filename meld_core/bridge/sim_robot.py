"""`SimRobot`: the MuJoCo WidowX insertion world seen as hardware (xs_sdk, two webcams, reset rig).

    robot = SimRobot(SimRobotConfig(), env)        # env: a WidowXInsertionEnv
    robot.set_operating_mode("arm", "velocity")
    robot.joint_group_command("arm", [0.1, 0, 0, 0, 0])
    robot.advance(now)                             # physics, at the control period

This is what `sim_node` exposes behind the same topics and services as xs_sdk, the cameras and the
reset rig, so the agent node cannot tell it from the robot. It copies xs_sdk's observable
behaviour that matters to us: group commands are dropped (with an error) when their length does not
match the group or the group is not in velocity mode; the last velocity is held until the next
command (no timeout, like the real servos); joint states carry the arm's measured positions and
velocities. The rig moves at a finite speed (the real one takes seconds), reporting "moving"
until it arrives. Everything here is plain Python over the environment's `apply_velocity`,
`joint_state`, `camera_images` and `set_rig`, so it is tested without ROS. The simulated driver
applies no safety filter (xs_sdk has none): on the ROS path the arm bridge filters, once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


class SimEnvLike(Protocol):
    joint_names: tuple[str, ...]  # arm joints in command order (the robot profile's)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]: ...

    def camera_images(self) -> dict[str, np.ndarray]: ...

    def apply_velocity(self, qdot_rad_s: np.ndarray) -> Any: ...

    def set_rig(self, rotation_deg: float, translation_mm: float) -> None: ...


@dataclass(frozen=True)
class SimRobotConfig:
    """Parameters of the simulated robot behind sim_node."""

    robot_name: str = "wx200"  # xs_sdk namespace the simulation answers under
    group: str = "arm"  # xs_sdk group name of the arm joints
    env_config: str = "{}"  # YAML/JSON overrides of WidowXInsertionConfig (the run's env_config)
    run_dir: str = ""  # if set: take env_config from this run's config.yaml instead (eval of a trained run)
    seed: int = 0  # seed of the simulation
    camera_hz: float = 15.0  # image publication rate of each simulated camera
    joint_state_hz: float = 50.0  # joint-state publication rate (xs_sdk: 100 Hz)
    rig_speed_deg_s: float = 4.0  # simulated rig rotation speed
    rig_speed_mm_s: float = 5.0  # simulated rig rail speed
    scene_frame_id: str = "scene_camera_optical_frame"  # frame_id of scene images
    wrist_frame_id: str = "wrist_camera_optical_frame"  # frame_id of wrist images
    allow_root_namespace: bool = False  # run in the root namespace, on the robot's own names (no robot here)

    def __post_init__(self) -> None:
        if not self.robot_name or not self.group:
            raise ValueError("SimRobotConfig needs robot_name and group")
        for name in ("camera_hz", "joint_state_hz", "rig_speed_deg_s", "rig_speed_mm_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SimRobotConfig.{name} must be > 0")


class SimRobot:
    """xs_sdk + cameras + reset rig over a simulated insertion env (see the module docstring)."""

    def __init__(self, config: SimRobotConfig, env: SimEnvLike) -> None:
        self.config = config
        self.env = env
        self.joint_names = tuple(env.joint_names)
        self._n = len(self.joint_names)
        self._lock = threading.Lock()
        self.modes: dict[str, str] = {config.group: "position"}  # xs_sdk's default mode
        self._command = np.zeros(self._n)
        self.dropped_commands = 0
        self.steps = 0
        self.rig_position = (0.0, 0.0)
        self.rig_goal: tuple[float, float] | None = None
        self.rig_state = "idle"
        self._rig_move_from: tuple[float, float] = (0.0, 0.0)
        self._rig_move_started = 0.0
        self._rig_move_duration = 0.0
        self._images: dict[str, np.ndarray] | None = None
        self.env.set_rig(*self.rig_position)  # the simulated router starts where the rig says it is

    # ----------------------------------------------------------------- xs_sdk
    def set_operating_mode(self, name: str, mode: str) -> bool:
        if name not in (self.config.group, "all"):
            log.error("set_operating_modes: unknown group %r", name)
            return False
        with self._lock:
            self.modes[self.config.group] = mode
            self._command = np.zeros(self._n)
        log.info("sim: group %r now in %s mode", name, mode)
        return True

    def joint_group_command(self, name: str, cmd: Sequence[float]) -> bool:
        with self._lock:
            if name != self.config.group:
                self.dropped_commands += 1
                log.error("joint_group: unknown group %r", name)
                return False
            if len(cmd) != self._n:
                self.dropped_commands += 1
                log.error("joint_group: %d values for the %d joints of %r; command dropped", len(cmd),
                          self._n,
                          name)
                return False
            if self.modes.get(name) != "velocity":
                self.dropped_commands += 1
                log.error("joint_group: group %r is in %s mode; only velocity mode is simulated", name,
                          self.modes.get(name))
                return False
            self._command = np.asarray(cmd, dtype=np.float64)
            return True

    @property
    def command(self) -> np.ndarray:
        with self._lock:
            return self._command.copy()

    def advance(self) -> None:
        """One control period of physics with the held velocity (unfiltered: like xs_sdk, the
        simulated driver does not check; the arm bridge is what filters)."""
        self.env.apply_velocity(self.command)
        self.steps += 1
        self._images = None

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        q, qdot = self.env.joint_state()
        return np.asarray(q, dtype=np.float64)[: self._n], np.asarray(qdot, dtype=np.float64)[: self._n]

    def images(self) -> dict[str, np.ndarray]:
        """The camera images of the current physics state (rendered once per physics step)."""
        if self._images is None:
            self._images = {k: np.ascontiguousarray(v) for k, v in self.env.camera_images().items()}
        return self._images

    # ----------------------------------------------------------------- reset rig
    def rig_goal_request(self, rotation_deg: float, translation_mm: float, now: float) -> None:
        if not (math.isfinite(rotation_deg) and math.isfinite(translation_mm)):
            raise ValueError("rig goal must be finite")
        if self.rig_state == "stopped":
            raise ValueError("simulated rig is stopped; call /meld/rig/home first")
        self._rig_move_from = self.rig_position
        self.rig_goal = (rotation_deg, translation_mm)
        self._rig_move_started = now
        self._rig_move_duration = max(abs(rotation_deg - self.rig_position[0]) / self.config.rig_speed_deg_s,
                                      abs(translation_mm - self.rig_position[1]) / self.config.rig_speed_mm_s)
        self.rig_state = "moving"

    def rig_update(self, now: float) -> None:
        """Advance the rig's motion; on arrival the simulated router is moved."""
        if self.rig_state not in ("moving", "homing") or self.rig_goal is None:
            return
        frac = 1.0 if self._rig_move_duration <= 0 else min(1.0, (now - self._rig_move_started)
                                                                / self._rig_move_duration)
        start, goal = self._rig_move_from, self.rig_goal
        self.rig_position = (start[0] + frac * (goal[0] - start[0]), start[1] + frac * (goal[1] - start[1]))
        if frac >= 1.0:
            self.env.set_rig(goal[0], goal[1])
            self._images = None
            self.rig_position = goal
            self.rig_state = "idle"

    def rig_home(self, now: float) -> None:
        if self.rig_state == "stopped":
            self.rig_state = "idle"
        self.rig_goal_request(0.0, 0.0, now)
        self.rig_state = "homing"

    def rig_stop(self) -> None:
        """Stop where the rig is now (the simulated router is put there)."""
        if self.rig_state in ("moving", "homing"):
            self.env.set_rig(*self.rig_position)
            self._images = None
        self.rig_goal = None
        self.rig_state = "stopped"


class SimNamespaceError(RuntimeError):
    """The simulation was started where it would answer on the real robot's topics and services."""


def check_sim_namespace(namespace: str, allow_root: bool = False) -> None:
    """The simulated robot must not share names with a real one: refuse the root namespace, where
    a simulated xs_sdk, cameras and rig would meet the real arm node, agent and rig node."""
    if namespace.strip("/") or allow_root:
        return
    raise SimNamespaceError(
        "sim_node runs in the root namespace, where it would answer on the real robot's topics and "
        "services: start it in a namespace (the launch files use 'sim'; ros2 run: --ros-args -r __ns:=/sim), "
        "or set allow_root_namespace:=true on a machine with no robot")


def sim_env_overrides(config: SimRobotConfig) -> dict:
    """The WidowXInsertionConfig overrides sim_node builds its world from (run_dir wins over env_config)."""
    import yaml

    if config.run_dir:
        path = Path(config.run_dir) / "config.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run_dir must be a meld run directory")
        return dict(yaml.safe_load(path.read_text()).get("env_config") or {})
    overrides = yaml.safe_load(config.env_config) or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"env_config must be a YAML mapping, got {config.env_config!r}")
    return overrides
