"""Name -> task family: what `meld train --env NAME` and the presets look up.

Each entry names the module, the environment class and its frozen config dataclass as strings, so
that importing the registry stays cheap (MuJoCo is only imported when a MuJoCo family is built).
An environment class takes `(config, seed=...)` and implements `meld_core.envs.base.TaskEnv`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from meld_core.envs.base import TaskEnv


class UnknownEnvError(ValueError):
    """The requested environment name is not registered."""


@dataclass(frozen=True)
class EnvEntry:
    """Where a task family lives."""

    module: str  # importable module, e.g. "meld_core.envs.point_nav"
    env_class: str  # class implementing TaskEnv, constructed as env_class(config, seed=seed)
    config_class: str  # frozen dataclass with the family's parameters
    description: str  # one line for `meld train --help`


_REGISTRY: dict[str, EnvEntry] = {
    "point_nav": EnvEntry("meld_core.envs.point_nav", "PointNavEnv", "PointNavConfig",
                          "2-D point robot, goals on a semicircle (paper appendix D); CPU-cheap"),
    "widowx_insertion": EnvEntry("meld_core.envs.widowx_insertion", "WidowXInsertionEnv",
                                 "WidowXInsertionConfig",
                                 "MuJoCo WidowX 200 inserts an Ethernet plug; two cameras; rig tasks"),
}


def register_env(name: str, entry: EnvEntry) -> None:
    """Add (or replace) a task family; used by the package itself and by plugins or tests."""
    _REGISTRY[name] = entry


def env_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def env_entry(name: str) -> EnvEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownEnvError(
            f"unknown environment {name!r}; choose one of: {', '.join(env_names())}") from None


def env_config_class(name: str) -> type:
    entry = env_entry(name)
    return getattr(importlib.import_module(entry.module), entry.config_class)


def make_env(name: str, config: Any = None, seed: int = 0) -> TaskEnv:
    """Build the named environment from its config dataclass (None: the family's defaults)."""
    entry = env_entry(name)
    module = importlib.import_module(entry.module)
    config_cls = getattr(module, entry.config_class)
    if config is None:
        config = config_cls()
    if not isinstance(config, config_cls):
        raise TypeError(f"{name} needs a {config_cls.__name__}, got {type(config).__name__}")
    return getattr(module, entry.env_class)(config, seed=seed)
