"""Expand the meld xacro files without ROS and read the kinematic tree of a URDF.

    from meld_core.robot.urdf import expand_xacro, UrdfModel
    urdf_xml = expand_xacro(num_ports=4)          # urdf/meld_scene.urdf.xacro
    model = UrdfModel.from_xml(urdf_xml)
    T = model.transform("base_link", "plug_tip_link", {"waist": 0.3})

The URDF in `urdf/` is the only copy of the robot's kinematics: forward kinematics, the
simulation and the reward's port poses are all computed from what this module reads.
"""

from __future__ import annotations

import logging
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SCENE_XACRO = "meld_scene.urdf.xacro"


class UrdfError(Exception):
    """The URDF/xacro could not be found, expanded or understood."""


def share_file(directory: str, filename: str) -> Path:
    """Locate `<directory>/<filename>` (directory "urdf" or "config") in a source checkout or an
    installed `share/meld_ros/<directory>`.

    Search order: `$MELD_URDF_DIR` (urdf) or `$MELD_CONFIG_DIR` (config), the checkout this module
    lives in, then the data directory of an installation (`<prefix>/share/meld_ros/<directory>`, as
    pip and colcon install it) for the prefix this module is installed in, the Python prefix and
    every `$AMENT_PREFIX_PATH` entry.
    """
    candidates: list[Path] = []
    env_dir = os.environ.get(f"MELD_{directory.upper()}_DIR")
    if env_dir:
        candidates.append(Path(env_dir))
    here = Path(__file__).resolve()
    candidates.append(here.parents[2] / directory)  # source checkout / editable install
    # Installed as <prefix>/lib/pythonX.Y/site-packages/meld_core/robot/urdf.py -> <prefix>.
    prefixes = [str(here.parents[5])] if len(here.parents) > 5 else []
    prefixes += [sys.prefix, sys.base_prefix]
    prefixes += os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)  # colcon / ROS workspaces
    for prefix in dict.fromkeys(prefixes):
        if prefix:
            candidates.append(Path(prefix) / "share" / "meld_ros" / directory)
    for candidate in candidates:
        path = candidate / filename
        if path.is_file():
            return path
    raise UrdfError(
        f"cannot find {directory}/{filename}; looked in {', '.join(str(c) for c in candidates)}. "
        f"Set MELD_{directory.upper()}_DIR to the directory holding it."
    )


def default_urdf_path(filename: str = SCENE_XACRO) -> Path:
    """`urdf/<filename>` of a source checkout or an installation (see `share_file`)."""
    return share_file("urdf", filename)


def expand_xacro(path: str | Path | None = None, **args: object) -> str:
    """Return the URDF XML text of a xacro file (default: the meld scene), with xacro `args`.

    Works without ROS: the meld xacro files use only relative includes. Argument values are
    converted with `str()` (booleans become "true"/"false").
    """
    import xacro  # imported lazily: it is a pure-Python dependency but slow-ish to import

    path = Path(path) if path is not None else default_urdf_path()
    mappings = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in args.items()}
    try:
        doc = xacro.process_file(str(path), mappings=mappings)
    except Exception as exc:  # xacro raises a zoo of exception types
        raise UrdfError(f"xacro failed on {path} with args {mappings}: {exc}") from exc
    return doc.toprettyxml(indent="  ")


def rpy_to_matrix(rpy: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw -> 3x3 rotation (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by `angle` about the unit vector `axis` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def homogeneous(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = translation
    return t


@dataclass(frozen=True)
class UrdfJoint:
    """One `<joint>` of a URDF (only what kinematics and limits need)."""

    name: str  # joint name
    type: str  # revolute | continuous | prismatic | fixed | floating | planar
    parent: str  # parent link name
    child: str  # child link name
    origin: np.ndarray  # 4x4 transform parent -> joint frame at q = 0
    axis: np.ndarray  # unit axis in the joint frame
    lower: float  # position limit (rad or m); -inf if none
    upper: float  # position limit; +inf if none
    velocity: float  # velocity limit (rad/s or m/s); inf if none
    effort: float  # effort limit (N m or N); inf if none
    mimic: tuple[str, float, float] | None  # (joint, multiplier, offset) for mimic joints

    def motion(self, q: float) -> np.ndarray:
        """Transform of the child frame relative to the joint frame at position `q`."""
        if self.type in ("revolute", "continuous"):
            return homogeneous(axis_angle_matrix(self.axis, q), np.zeros(3))
        if self.type == "prismatic":
            return homogeneous(np.eye(3), self.axis * q)
        return np.eye(4)


def _floats(text: str | None, default: tuple[float, ...]) -> np.ndarray:
    if text is None:
        return np.array(default, dtype=float)
    return np.array([float(v) for v in text.split()], dtype=float)


class UrdfModel:
    """The kinematic tree of a URDF: joints by name, parent joint of every link, chains, FK."""

    def __init__(self, name: str, links: list[str], joints: list[UrdfJoint]) -> None:
        self.name = name
        self.links = tuple(links)
        self.joints: dict[str, UrdfJoint] = {j.name: j for j in joints}
        self._parent_joint: dict[str, UrdfJoint] = {j.child: j for j in joints}
        roots = [link for link in links if link not in self._parent_joint]
        if len(roots) != 1:
            raise UrdfError(f"URDF {name!r} must have exactly one root link, found {roots}")
        self.root = roots[0]

    @classmethod
    def from_xml(cls, urdf_xml: str) -> UrdfModel:
        try:
            root = ET.fromstring(urdf_xml)
        except ET.ParseError as exc:
            raise UrdfError(f"the URDF is not valid XML: {exc}") from exc
        if root.tag != "robot":
            raise UrdfError(f"expected a <robot> root element, got <{root.tag}>")
        links = [el.attrib["name"] for el in root.findall("link")]
        joints = []
        for el in root.findall("joint"):
            origin = el.find("origin")
            xyz = _floats(origin.get("xyz") if origin is not None else None, (0.0, 0.0, 0.0))
            rpy = _floats(origin.get("rpy") if origin is not None else None, (0.0, 0.0, 0.0))
            axis_el = el.find("axis")
            axis = _floats(axis_el.get("xyz") if axis_el is not None else None, (1.0, 0.0, 0.0))
            norm = np.linalg.norm(axis)
            if norm == 0.0:
                raise UrdfError(f"joint {el.get('name')!r} has a zero axis")
            limit = el.find("limit")

            def lim(key: str, default: float, limit=limit) -> float:
                return float(limit.get(key, default)) if limit is not None else default

            mimic_el = el.find("mimic")
            mimic = None
            if mimic_el is not None:
                mimic = (mimic_el.attrib["joint"], float(mimic_el.get("multiplier", 1.0)),
                         float(mimic_el.get("offset", 0.0)))
            jtype = el.attrib["type"]
            bounded = jtype in ("revolute", "prismatic")
            joints.append(UrdfJoint(
                name=el.attrib["name"], type=jtype,
                parent=el.find("parent").attrib["link"], child=el.find("child").attrib["link"],
                origin=homogeneous(rpy_to_matrix(rpy), xyz), axis=axis / norm,
                lower=lim("lower", 0.0) if bounded else -np.inf,
                upper=lim("upper", 0.0) if bounded else np.inf,
                velocity=lim("velocity", np.inf), effort=lim("effort", np.inf), mimic=mimic,
            ))
        return cls(root.get("name", ""), links, joints)

    def _is_ancestor(self, base: str, tip: str) -> bool:
        link = tip
        while link != base:
            joint = self._parent_joint.get(link)
            if joint is None:
                return False
            link = joint.parent
        return True

    def chain(self, base: str, tip: str) -> list[UrdfJoint]:
        """Joints from `base` down to `tip` (tip must be a descendant of base), in order."""
        for link in (base, tip):
            if link not in self.links:
                raise UrdfError(f"link {link!r} is not in URDF {self.name!r}")
        joints: list[UrdfJoint] = []
        link = tip
        while link != base:
            joint = self._parent_joint.get(link)
            if joint is None:
                raise UrdfError(f"link {tip!r} is not below {base!r} in URDF {self.name!r}")
            joints.append(joint)
            link = joint.parent
        return joints[::-1]

    def transform(self, base: str, tip: str, positions: Mapping[str, float] | None = None) -> np.ndarray:
        """4x4 pose of `tip` in `base` at the given joint positions (missing joints are 0).

        `base` and `tip` may be any two links (e.g. base_link and a port on the rig).
        """
        if not self._is_ancestor(base, tip):
            return np.linalg.inv(self.transform(self.root, base, positions)) @ self.transform(
                self.root, tip, positions)
        positions = positions or {}
        t = np.eye(4)
        for joint in self.chain(base, tip):
            q = positions.get(joint.name, 0.0)
            if joint.mimic is not None and joint.name not in positions:
                src, mult, offset = joint.mimic
                q = mult * positions.get(src, 0.0) + offset
            t = t @ joint.origin @ joint.motion(q)
        return t
