"""WidowX 200 forward and inverse kinematics, read from the URDF (the only copy of the kinematics).

    from meld_core.robot.kinematics import WidowXKinematics
    kin = WidowXKinematics.from_urdf()            # expands urdf/meld_scene.urdf.xacro
    kin.forward(np.zeros(5))[:3, 3]               # -> (0.408575, 0, 0.31065): ee_gripper_link
    kin.forward(q, tip="plug_tip_link")           # the plug tip used by the insertion reward
    result = kin.inverse(target_pose, q0, tip="plug_tip_link")

Frames follow the Interbotix description: `base_link` is the base (space) frame and
`ee_gripper_link` the end effector. Any link below the arm (plug tip, wrist camera, ...) can be
used as `tip`; joints outside the five arm joints (gripper, fingers) are held at 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meld_core.robot.urdf import UrdfError, UrdfModel, axis_angle_matrix, expand_xacro

# The WidowX 200's arm joints in command order (xs_sdk's `arm` group). The one copy of the list:
# `WidowXKinematics` checks that the URDF's moving joints from base_link to ee_gripper_link are
# exactly these, and every config derives its joint names from here or from a `RobotProfile`.
ARM_JOINTS = ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")
BASE_LINK = "base_link"
EE_LINK = "ee_gripper_link"
TOOL_LINK = "plug_tip_link"


def rotation_angle(rotation: np.ndarray) -> float:
    """Angle (rad, in [0, pi]) of a 3x3 rotation matrix."""
    cos = (np.trace(rotation) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def rotation_log(rotation: np.ndarray) -> np.ndarray:
    """Axis * angle vector of a 3x3 rotation matrix (robust near 0 and pi)."""
    angle = rotation_angle(rotation)
    if angle < 1e-9:
        return np.zeros(3)
    if np.pi - angle < 1e-6:
        # Near pi: the axis is the eigenvector of R with eigenvalue 1.
        w, v = np.linalg.eigh((rotation + rotation.T) / 2.0)
        return v[:, np.argmax(w)] * angle
    vec = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                    rotation[1, 0] - rotation[0, 1]])
    return vec * (angle / (2.0 * np.sin(angle)))


@dataclass(frozen=True)
class IkResult:
    """Outcome of `WidowXKinematics.inverse`."""

    q: np.ndarray  # (5,) joint positions, within the joint limits
    position_error: float  # m, |p(q) - p_target|
    rotation_error: float  # rad, angle between R(q) and R_target (0 if orientation was ignored)
    converged: bool  # both errors within the requested tolerances


class _Chain:
    """Precomputed FK of base -> tip: per step a fixed transform, then an arm joint (or none)."""

    def __init__(self, model: UrdfModel, base: str, tip: str, arm_joints: tuple[str, ...]) -> None:
        self.steps: list[tuple[np.ndarray, int, str, np.ndarray]] = []
        pending = np.eye(4)
        for joint in model.chain(base, tip):
            pending = pending @ joint.origin
            if joint.type == "fixed":
                continue
            if joint.name not in arm_joints:
                raise UrdfError(f"link {tip!r} is moved by joint {joint.name!r}, which is not an arm joint")
            if joint.type not in ("revolute", "continuous"):
                raise UrdfError(f"arm joint {joint.name!r} has unsupported type {joint.type!r}")
            self.steps.append((pending, arm_joints.index(joint.name), joint.type, joint.axis))
            pending = np.eye(4)
        self.tail = pending
        # Rodrigues' K and K^2 of each joint axis, for forward_many
        self._skews = []
        for *_, (x, y, z) in self.steps:
            k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
            self._skews.append((k, k @ k))

    def forward(self, q: np.ndarray, with_axes: bool = False):
        t = np.eye(4)
        axes = []
        for fixed, index, _, axis in self.steps:
            t = t @ fixed
            if with_axes:
                axes.append((index, t[:3, :3] @ axis, t[:3, 3].copy()))
            rot = np.eye(4)
            rot[:3, :3] = axis_angle_matrix(axis, float(q[index]))
            t = t @ rot
        t = t @ self.tail
        return (t, axes) if with_axes else t

    def forward_many(self, qs: np.ndarray) -> np.ndarray:
        """`forward` at K joint vectors at once: qs (K, n) -> poses (K, 4, 4)."""
        t: np.ndarray | None = None
        rot = np.zeros((len(qs), 4, 4))
        rot[:, 3, 3] = 1.0
        for (fixed, index, _, _), (k, kk) in zip(self.steps, self._skews):
            angle = qs[:, index][:, None, None]
            rot[:, :3, :3] = np.sin(angle) * k + (1.0 - np.cos(angle)) * kk
            rot[:, :3, :3] += np.eye(3)
            step = fixed @ rot  # (K, 4, 4)
            t = step if t is None else t @ step
        return t @ self.tail

    def reach(self) -> float:
        """An upper bound (m) on the tip's distance from any joint's axis, in any configuration: the
        lengths of the links from the first joint to the tip, added up."""
        links = [fixed[:3, 3] for fixed, *_ in self.steps[1:]] + [self.tail[:3, 3]]
        return float(sum(np.linalg.norm(v) for v in links))


class WidowXKinematics:
    """Forward kinematics, Jacobian and numerical IK of the five arm joints, built from a URDF."""

    def __init__(self, model: UrdfModel, prefix: str = "", base: str = BASE_LINK) -> None:
        self.model = model
        self.prefix = prefix
        self.base = prefix + base
        self.joint_names: tuple[str, ...] = ARM_JOINTS
        missing = [name for name in ARM_JOINTS if name not in model.joints]
        if missing:
            raise UrdfError(f"URDF {model.name!r} lacks the WidowX arm joints {missing}")
        chain = tuple(j.name for j in model.chain(self.base, prefix + EE_LINK) if j.type != "fixed")
        if chain != ARM_JOINTS:
            raise UrdfError(f"URDF {model.name!r}: the moving joints from {self.base} to {EE_LINK} are "
                            f"{chain}, not the WidowX arm joints {ARM_JOINTS}")
        joints = [model.joints[name] for name in ARM_JOINTS]
        self.lower = np.array([j.lower for j in joints])
        self.upper = np.array([j.upper for j in joints])
        self.velocity_limits = np.array([j.velocity for j in joints])
        self.effort_limits = np.array([j.effort for j in joints])
        self._chains: dict[str, _Chain] = {}

    @classmethod
    def from_urdf(cls, urdf_xml: str | None = None, prefix: str = "") -> WidowXKinematics:
        """Build from URDF text (default: the expanded urdf/meld_scene.urdf.xacro)."""
        if urdf_xml is None:
            urdf_xml = expand_xacro(prefix=prefix)
        return cls(UrdfModel.from_xml(urdf_xml), prefix=prefix)

    @property
    def has_tool(self) -> bool:
        """Whether the URDF has the plug (plug_tip_link)."""
        return self.prefix + TOOL_LINK in self.model.links

    def _chain(self, tip: str) -> _Chain:
        name = tip if tip.startswith(self.prefix) and self.prefix else self.prefix + tip
        chain = self._chains.get(name)
        if chain is None:
            chain = _Chain(self.model, self.base, name, self.joint_names)
            self._chains[name] = chain
        return chain

    def _check(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (len(self.joint_names),):
            raise ValueError(f"q must have shape ({len(self.joint_names)},), got {q.shape}")
        return q

    def forward(self, q: np.ndarray, tip: str = EE_LINK) -> np.ndarray:
        """4x4 pose of `tip` (default ee_gripper_link) in base_link at joint positions q (5,)."""
        return self._chain(tip).forward(self._check(q))

    def positions(self, qs: np.ndarray, tip: str = EE_LINK) -> np.ndarray:
        """Positions (K, 3) of `tip` in base_link at K joint vectors qs (K, 5), in one pass."""
        qs = np.asarray(qs, dtype=float)
        if qs.ndim != 2 or qs.shape[1] != len(self.joint_names):
            raise ValueError(f"qs must have shape (K, {len(self.joint_names)}), got {qs.shape}")
        return self._chain(tip).forward_many(qs)[:, :3, 3]

    def reach(self, tip: str = EE_LINK) -> float:
        """An upper bound (m) on the distance from `tip` to any arm joint's axis, in any configuration."""
        return self._chain(tip).reach()

    def tool_pose(self, q: np.ndarray) -> np.ndarray:
        """4x4 pose of the plug tip (plug_tip_link) in base_link."""
        return self.forward(q, TOOL_LINK)

    def jacobian(self, q: np.ndarray, tip: str = EE_LINK) -> np.ndarray:
        """Geometric Jacobian (6, 5) of `tip` in base_link: rows 0-2 linear, 3-5 angular velocity."""
        q = self._check(q)
        pose, axes = self._chain(tip).forward(q, with_axes=True)
        jac = np.zeros((6, len(self.joint_names)))
        for index, axis, origin in axes:
            jac[:3, index] = np.cross(axis, pose[:3, 3] - origin)
            jac[3:, index] = axis
        return jac

    def clip_to_limits(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)

    def inverse(self, target: np.ndarray, q0: np.ndarray | None = None, tip: str = EE_LINK, *,
                orientation_weight: float = 0.2, position_tol: float = 5e-4, rotation_tol: float = 0.01,
                max_iterations: int = 300, damping: float = 1e-3) -> IkResult:
        """Damped least-squares IK for a 4x4 target pose of `tip`, starting from q0 (default zeros).

        The arm has 5 joints, so a full 6-D pose is reachable only when it is consistent with
        the arm's geometry (e.g. the tool pointing straight down, any yaw). `orientation_weight`
        (m per rad) trades orientation against position error; set it to 0 for position-only IK.
        The result always respects the joint limits; check `converged`.
        """
        target = np.asarray(target, dtype=float)
        q = self.clip_to_limits(self._check(np.zeros(5) if q0 is None else q0).copy())
        weights = np.array([1.0, 1.0, 1.0] + [orientation_weight] * 3)
        for _ in range(max_iterations):
            pose = self.forward(q, tip)
            err = np.concatenate([target[:3, 3] - pose[:3, 3],
                                  pose[:3, :3] @ rotation_log(pose[:3, :3].T @ target[:3, :3])])
            pos_err = float(np.linalg.norm(err[:3]))
            rot_err = float(np.linalg.norm(err[3:]))
            if pos_err < position_tol and (orientation_weight == 0.0 or rot_err < rotation_tol):
                break
            jac = self.jacobian(q, tip) * weights[:, None]
            e = err * weights
            step = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), e)
            step_norm = np.linalg.norm(step)
            if step_norm > 0.3:
                step *= 0.3 / step_norm
            q = self.clip_to_limits(q + step)
        pose = self.forward(q, tip)
        pos_err = float(np.linalg.norm(target[:3, 3] - pose[:3, 3]))
        rot_err = rotation_angle(pose[:3, :3].T @ target[:3, :3]) if orientation_weight > 0 else 0.0
        converged = pos_err < position_tol and (orientation_weight == 0.0 or rot_err < rotation_tol)
        return IkResult(q=q, position_error=pos_err, rotation_error=rot_err, converged=converged)
