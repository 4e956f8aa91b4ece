"""The WidowX 200 as meld_ros drives it: every robot fact, written once.

    profile = RobotProfile.load()                # urdf/ + config/widowx_profile.yaml
    profile.joint_names, profile.home_q, profile.workspace_min
    safety = profile.safety_filter()             # the filter a command path applies (once)

Facts the URDF holds are read from it (`urdf/meld_scene.urdf.xacro`, through `WidowXKinematics`):
the arm joints in command order, their position and velocity limits, and the tool link (the plug
tip). Facts a URDF does not hold are in `config/widowx_profile.yaml`: the home pose, the plug-tip
workspace box and how long a velocity command may be held. The simulation env, the arm bridge
(arm_node), the sim node and the simulated ROS graph all build from a profile; no node parameter
file repeats these numbers (tests/test_robot_profile.py checks that they agree everywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.robot.kinematics import EE_LINK, TOOL_LINK, WidowXKinematics
from meld_core.robot.safety import SafetyConfig, SafetyFilter
from meld_core.robot.urdf import share_file

PROFILE_FILE = "widowx_profile.yaml"
_FACTS = ("home_q", "workspace_min", "workspace_max", "hold_time_s")


def profile_facts(path: str | Path | None = None) -> dict[str, Any]:
    """The non-URDF facts from `config/widowx_profile.yaml` (or `path`)."""
    import yaml

    path = Path(path) if path is not None else share_file("config", PROFILE_FILE)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of {', '.join(_FACTS)}")
    unknown = sorted(set(data) - set(_FACTS))
    missing = sorted(set(_FACTS) - set(data))
    if unknown or missing:
        raise ValueError(f"{path}: unknown keys {unknown}, missing keys {missing}; it holds exactly "
                         f"{', '.join(_FACTS)}")
    return dict(data)


@dataclass(frozen=True)
class RobotProfile:
    """One arm's facts (see the module docstring); build it with `load` or `from_kinematics`."""

    kinematics: WidowXKinematics = field(repr=False, compare=False)  # FK/Jacobian of the URDF
    joint_names: tuple[str, ...]  # arm joints in command order (URDF; xs_sdk's `arm` group order)
    lower: tuple[float, ...]  # rad, lower position limit per joint (URDF)
    upper: tuple[float, ...]  # rad, upper position limit per joint (URDF)
    velocity_limits: tuple[float, ...]  # rad/s per joint (URDF)
    tool_link: str  # the link the workspace box holds: the plug tip (URDF), else ee_gripper_link
    home_q: tuple[float, ...]  # rad, home pose per joint (profile file)
    workspace_min: tuple[float, float, float]  # m, tool box corner in base_link (profile file)
    workspace_max: tuple[float, float, float]  # m, the opposite corner (profile file)
    hold_time_s: float  # s a velocity command may be held before the next one (profile file)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ("lower", "upper", "velocity_limits", "home_q", "workspace_min", "workspace_max"):
            value = tuple(float(v) for v in getattr(self, name))
            object.__setattr__(self, name, value)
            if not all(np.isfinite(value)):
                raise ValueError(f"robot profile: {name} must be finite, got {value}")
        if len(self.home_q) != n:
            raise ValueError(f"robot profile: home_q has {len(self.home_q)} values for the {n} arm joints "
                             f"{self.joint_names}")
        if not all(lo <= q <= hi for lo, q, hi in zip(self.lower, self.home_q, self.upper)):
            raise ValueError(f"robot profile: home_q {self.home_q} is outside the URDF joint limits")
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3 or not all(
                a < b for a, b in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"robot profile: the workspace box needs min < max on x, y, z; got "
                             f"{self.workspace_min}, {self.workspace_max}")
        home_tool = self.kinematics.forward(np.asarray(self.home_q), self.tool_link)[:3, 3]
        if not np.all((home_tool >= self.workspace_min) & (home_tool <= self.workspace_max)):
            raise ValueError(f"robot profile: at home the {self.tool_link} is at {np.round(home_tool, 3)}, "
                             f"outside the workspace box {self.workspace_min} .. {self.workspace_max}")
        if not self.hold_time_s > 0:
            raise ValueError(f"robot profile: hold_time_s must be > 0, got {self.hold_time_s}")

    @classmethod
    def from_kinematics(cls, kinematics: WidowXKinematics, facts: Mapping[str, Any] | None = None
                        ) -> RobotProfile:
        """The URDF facts of `kinematics` plus `facts` (default: config/widowx_profile.yaml)."""
        facts = profile_facts() if facts is None else facts
        return cls(kinematics=kinematics, joint_names=tuple(kinematics.joint_names),
                   lower=tuple(kinematics.lower), upper=tuple(kinematics.upper),
                   velocity_limits=tuple(kinematics.velocity_limits),
                   tool_link=TOOL_LINK if kinematics.has_tool else EE_LINK,
                   home_q=tuple(facts["home_q"]), workspace_min=tuple(facts["workspace_min"]),
                   workspace_max=tuple(facts["workspace_max"]), hold_time_s=float(facts["hold_time_s"]))

    @classmethod
    def load(cls, urdf_xml: str | None = None, facts_path: str | Path | None = None) -> RobotProfile:
        """From a URDF (default: the expanded urdf/meld_scene.urdf.xacro) and a profile file."""
        return cls.from_kinematics(WidowXKinematics.from_urdf(urdf_xml), profile_facts(facts_path))

    def safety_config(self, **overrides: Any) -> SafetyConfig:
        """The safety filter's limits for this arm; `overrides` tune the filter (margins)."""
        values: dict[str, Any] = dict(
            joint_names=self.joint_names, velocity_limits=self.velocity_limits, lower=self.lower,
            upper=self.upper, workspace_min=self.workspace_min, workspace_max=self.workspace_max,
            workspace_link=self.tool_link, hold_time_s=self.hold_time_s)
        values.update(overrides)
        return SafetyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def safety_filter(self, **overrides: Any) -> SafetyFilter:
        return SafetyFilter(self.safety_config(**overrides), self.kinematics)
