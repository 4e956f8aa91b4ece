"""The cable-insertion reward, computed from poses only, so sim and robot share it exactly.

    rig = RigGeometry.from_urdf()                          # port frames on the reset rig, from the URDF
    goal = InsertionGoal.from_params({"port": 1, "rotation_deg": -3.2, "translation_mm": 4.1})
    port = rig.port_pose(goal)                             # 4x4 in base_link
    plug = kin.tool_pose(q_measured)                       # 4x4 in base_link (forward kinematics)
    dense, sparse, success, info = insertion_reward(plug, port, InsertionRewardConfig())

Distances: translational = |p_plug - p_port| (m), rotational = the angle of R_plug^T R_port (rad);
both frames use the same convention (z into the port / out of the plug tip, x along the 12 mm
side), so an inserted plug has distance 0. The shaped (dense) reward has the form of the reference
Sawyer insertion task: s = (d_trans + rotation_weight * d_rot) / distance_scale,
dense = -(s^2 + log10(s^2 + 1e-5)) + c with c making dense = 0 at `zero_reward_distance`.
Success: the plug tip is inside the port (lateral offset and depth within tolerance) and aligned
(angle within tolerance). Sparse reward = dense + 1 on success, else 0 (the reference convention:
the sparse signal is non-zero only when the task is solved).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from meld_core.robot.kinematics import rotation_angle
from meld_core.robot.urdf import UrdfModel, expand_xacro


@dataclass(frozen=True)
class InsertionRewardConfig:
    """Shaping and success tolerances of the insertion reward."""

    distance_scale: float = 0.2  # m; the shaped formula sees d / distance_scale (reference: 5 x metres)
    rotation_weight: float = 0.03  # m per rad of rotational distance added to the translational one
    zero_reward_distance: float = 0.03  # m; combined distance at which the dense reward crosses 0
    lateral_tolerance: float = 0.003  # m; max distance of the plug tip from the port axis for success
    depth_tolerance: float = 0.004  # m; the tip may stop this much short of the full insertion depth
    angle_tolerance_deg: float = 10.0  # max angle between plug and port frames for success

    def __post_init__(self) -> None:
        for name in ("distance_scale", "zero_reward_distance", "lateral_tolerance", "depth_tolerance",
                     "angle_tolerance_deg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"InsertionRewardConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.rotation_weight < 0:
            raise ValueError(f"rotation_weight must be >= 0, got {self.rotation_weight}")


@dataclass(frozen=True)
class InsertionGoal:
    """Which port is the goal and where the reset rig put the router (a task's parameters)."""

    port: int  # index of the goal port, 0 .. num_ports-1 (along the router's y axis)
    rotation_deg: float = 0.0  # rig rotation joint (router yaw about the port-row centre), degrees
    translation_mm: float = 0.0  # rig rail joint (router shift along base_link y), millimetres

    @classmethod
    def from_params(cls, params: Mapping[str, float]) -> InsertionGoal:
        try:
            return cls(port=int(params["port"]), rotation_deg=float(params.get("rotation_deg", 0.0)),
                       translation_mm=float(params.get("translation_mm", 0.0)))
        except KeyError as exc:
            raise ValueError(f"task params {dict(params)} lack 'port'; expected port, rotation_deg, "
                             "translation_mm") from exc


def _shaped(s: float) -> float:
    return -(s * s + np.log10(s * s + 1e-5))


def insertion_reward(plug_pose: np.ndarray, port_pose: np.ndarray, cfg: InsertionRewardConfig | None = None
                     ) -> tuple[float, float, bool, dict[str, float]]:
    """Dense reward, sparse reward, success and distances for a plug-tip pose and a port pose (4x4)."""
    cfg = cfg or InsertionRewardConfig()
    plug_pose = np.asarray(plug_pose, dtype=float)
    port_pose = np.asarray(port_pose, dtype=float)
    delta = plug_pose[:3, 3] - port_pose[:3, 3]
    trans = float(np.linalg.norm(delta))
    angle = rotation_angle(plug_pose[:3, :3].T @ port_pose[:3, :3])
    local = port_pose[:3, :3].T @ delta  # tip in the port frame: z > 0 is deeper than the goal
    lateral = float(np.linalg.norm(local[:2]))
    depth_short = float(-local[2])  # > 0: the tip stops short of the goal depth
    success = (lateral <= cfg.lateral_tolerance and depth_short <= cfg.depth_tolerance
               and np.degrees(angle) <= cfg.angle_tolerance_deg)
    s = (trans + cfg.rotation_weight * angle) / cfg.distance_scale
    dense = _shaped(s) - _shaped(cfg.zero_reward_distance / cfg.distance_scale)
    sparse = dense + 1.0 if success else 0.0
    info = {"distance_m": trans, "angle_deg": float(np.degrees(angle)), "lateral_m": lateral,
            "depth_short_m": depth_short}
    return float(dense), float(sparse), bool(success), info


class RigGeometry:
    """Port poses on the reset rig, read from the URDF (rig joints `rig_rail` and `rig_rotation`)."""

    def __init__(self, model: UrdfModel, prefix: str = "", base: str = "base_link") -> None:
        self.model = model
        self.prefix = prefix
        self.base = prefix + base
        ports = []
        while f"{prefix}port_{len(ports)}_link" in model.links:
            ports.append(f"{prefix}port_{len(ports)}_link")
        if not ports:
            raise ValueError("the URDF has no port_<i>_link frames; expand urdf/meld_scene.urdf.xacro")
        self.port_links = tuple(ports)
        rail, rot = model.joints["rig_rail"], model.joints["rig_rotation"]
        self.rotation_limits_deg = (float(np.degrees(rot.lower)), float(np.degrees(rot.upper)))
        self.translation_limits_mm = (rail.lower * 1000.0, rail.upper * 1000.0)

    @classmethod
    def from_urdf(cls, urdf_xml: str | None = None, prefix: str = "") -> RigGeometry:
        return cls(UrdfModel.from_xml(urdf_xml if urdf_xml is not None else expand_xacro(prefix=prefix)),
                   prefix=prefix)

    @property
    def num_ports(self) -> int:
        return len(self.port_links)

    def joint_positions(self, rotation_deg: float, translation_mm: float) -> dict[str, float]:
        """Rig joint positions (URDF units) for a rotation in degrees and a translation in mm."""
        return {"rig_rotation": float(np.radians(rotation_deg)), "rig_rail": translation_mm / 1000.0}

    def port_pose(self, goal: InsertionGoal | Mapping[str, float], port: int | None = None) -> np.ndarray:
        """4x4 pose in base_link of the goal port (or of `port`) for the rig state of `goal`."""
        if not isinstance(goal, InsertionGoal):
            goal = InsertionGoal.from_params(goal)
        index = goal.port if port is None else port
        if not 0 <= index < self.num_ports:
            raise ValueError(f"port {index} does not exist; the router has {self.num_ports} ports")
        return self.model.transform(self.base, self.port_links[index],
                                    self.joint_positions(goal.rotation_deg, goal.translation_mm))

    def inserted_port(self, plug_pose: np.ndarray, goal: InsertionGoal,
                      cfg: InsertionRewardConfig | None = None) -> int:
        """Index of the port the plug is inserted in (any port, not only the goal), or -1."""
        for index in range(self.num_ports):
            if insertion_reward(plug_pose, self.port_pose(goal, index), cfg)[2]:
                return index
        return -1


def port_pose(task_params: Mapping[str, float], rig: RigGeometry) -> np.ndarray:
    """The goal port's 4x4 pose in base_link for a task's parameters (see `RigGeometry.port_pose`)."""
    return rig.port_pose(InsertionGoal.from_params(task_params))
