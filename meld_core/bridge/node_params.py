"""Which config dataclass each ROS node reads its parameters into (plain data, no ROS).

Each node declares one parameter per field of its groups (`prefix` + field name, e.g.
`env.image_max_age_s`), except the fields listed in `exclude` (the node derives them from
elsewhere, e.g. the agent takes the episode length from the run's config). `config/<node>.yaml`
files are checked against this table in CI (tests/test_node_params.py): no unknown keys, every
field documented.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meld_core.bridge.paramspec import ParamError, ParamSpec, config_from_params, param_specs


@dataclass(frozen=True)
class ParamGroup:
    """One dataclass behind a node's parameters."""

    config_class: str  # "module:Class" of a flat frozen config dataclass
    prefix: str = ""  # parameter-name prefix, e.g. "io." (YAML: a nested mapping `io:`)
    exclude: tuple[str, ...] = ()  # fields not exposed as parameters (derived by the node)

    def cls(self) -> type:
        module, name = self.config_class.split(":")
        return getattr(importlib.import_module(module), name)

    def specs(self) -> list[ParamSpec]:
        return [s for s in param_specs(self.cls()) if s.name not in self.exclude]


NODE_PARAMS: dict[str, tuple[ParamGroup, ...]] = {
    "camera_node": (ParamGroup("meld_core.hardware.camera:CameraConfig"),),
    "arm_node": (ParamGroup("meld_core.bridge.arm_bridge:ArmBridgeConfig"),),
    "arm_guard_node": (ParamGroup("meld_core.bridge.arm_guard:ArmGuardConfig"),),
    "reset_rig_node": (ParamGroup("meld_core.hardware.rig_supervisor:RigNodeConfig"),),
    "success_node": (ParamGroup("meld_core.hardware.link_state:LinkStateConfig"),),
    "agent_node": (
        ParamGroup("meld_core.bridge.agent_run:AgentRunConfig"),
        ParamGroup("meld_core.bridge.remote_env:RemoteEnvConfig", prefix="io.",
                   exclude=("name", "control_hz", "episode_length", "image_size", "action_scale")),
    ),
    "sim_node": (ParamGroup("meld_core.bridge.sim_robot:SimRobotConfig"),),
    "gz_velocity_adapter_node": (ParamGroup("meld_core.bridge.gz_adapter:GzAdapterConfig"),),
}


# Parameters every rclpy node has; YAML files may set them.
ROS_BUILTIN_PARAMS = ("use_sim_time",)


def flatten_yaml_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML parameter mappings -> dotted names, as ROS does (`io: {a: 1}` -> `io.a`)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_yaml_params(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def configs_from_params(node: str, values: Mapping[str, Any]) -> list[Any]:
    """Build every group's dataclass of `node` from dotted parameter values (unknown names raise)."""
    groups = NODE_PARAMS[node]
    remaining = {k: v for k, v in values.items() if k not in ROS_BUILTIN_PARAMS}
    configs = []
    for group in groups:
        names = {s.name for s in group.specs()}
        mine = {}
        for key in list(remaining):
            if key.startswith(group.prefix) and key[len(group.prefix):] in names:
                mine[key[len(group.prefix):]] = remaining.pop(key)
        configs.append(config_from_params(group.cls(), mine))
    if remaining:
        known = sorted(g.prefix + s.name for g in groups for s in g.specs())
        raise ParamError(f"unknown parameter(s) {sorted(remaining)} for {node}; known: {known}")
    return configs
