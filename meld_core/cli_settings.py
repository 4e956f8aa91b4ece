"""`meld train`'s run settings on the command line: every field of the run config as
`--SECTION.FIELD=VALUE`, parsed by tyro from the config dataclasses themselves.

    meld train --env point_nav --preset smoke --run-dir runs/p --sac.batch_size=128 \\
        --env_config.episode_length=30

tyro builds one flag per field of `ModelConfig`, `SACConfig`, `ReplayConfig`, `DeviceConfig`,
`TrainConfig` and of the environment's own config dataclass (`env_config`, so its keys are checked
against the env), with the field's comment as help and the value the run would otherwise use as the
default. The flags a user gave come back as dotted overrides for
`meld_core.train.setup.resolve_run_config`, which applies and validates them like a YAML file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from meld_core.config import (
    DeviceConfig,
    ModelConfig,
    ReplayConfig,
    RunConfig,
    SACConfig,
    TrainConfig,
    config_diff,
)

SECTIONS = {"model": ModelConfig, "sac": SACConfig, "replay": ReplayConfig, "device": DeviceConfig,
            "train": TrainConfig}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _registry() -> Any:
    """tyro's parsing of bools and None as in YAML: --sac.td_across_resets=true, --model.grad_clip=null."""
    from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

    registry = ConstructorRegistry()

    def to_bool(text: str) -> bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"expected true or false, got {text!r}")

    def to_none(text: str) -> None:
        if text.lower() not in ("none", "null", "~"):
            raise ValueError(f"expected null, got {text!r}")

    @registry.primitive_rule
    def bool_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
        if info.type is not bool:
            return None
        return PrimitiveConstructorSpec(nargs=1, metavar="{true,false}",
                                        instance_from_str=lambda a: to_bool(a[0]),
                                        is_instance=lambda x: isinstance(x, bool),
                                        str_from_instance=lambda b: ["true" if b else "false"])

    @registry.primitive_rule
    def none_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
        if info.type is not type(None):
            return None
        return PrimitiveConstructorSpec(nargs=1, metavar="{null}", instance_from_str=lambda a: to_none(a[0]),
                                        is_instance=lambda x: x is None, str_from_instance=lambda _: ["null"])

    return registry


def _schema(env_config_class: type | None) -> type:
    """A dataclass with one field per settable section of the run config."""
    fields: list[tuple[str, Any]] = []
    if env_config_class is not None:
        fields.append(("env_config", env_config_class))
    fields += list(SECTIONS.items())
    return dataclasses.make_dataclass("RunSettings", fields, frozen=True)


def _defaults(base: RunConfig | None, env_config_class: type | None) -> Any:
    schema = _schema(env_config_class)
    if base is None:
        return schema(**{name: cls() for name, cls in SECTIONS.items()})
    values = {name: getattr(base, name) for name in SECTIONS}
    if env_config_class is not None:
        values["env_config"] = base.build_env_config()
    return schema(**values)


def parse_settings(argv: Sequence[str], base: RunConfig | None, *, prog: str, description: str,
                   env_config_class: type | None = None) -> dict[str, Any]:
    """The dotted overrides that `argv` (`--sac.batch_size=128 ...`) makes to `base`.

    `base=None` shows the dataclass defaults (for `--help` before a preset is known). tyro prints a
    usage error (the flag, the expected type, close matches) or the help and raises SystemExit.
    """
    import tyro

    default = _defaults(base, env_config_class)
    parsed = tyro.cli(type(default), default=default, args=list(argv), prog=prog, description=description,
                      use_underscores=True, registry=_registry(), config=(tyro.conf.FlagConversionOff,))
    return {key: new for key, _, new in config_diff(dataclasses.asdict(default), dataclasses.asdict(parsed))}
