"""Flat node configs <-> ROS parameters, without ROS.

Every ROS node in `meld_ros` is configured by one frozen dataclass from `meld_core` whose fields
are flat and ROS-typed (bool, int, float, str, or a tuple of one of those). This module turns such
a dataclass into a list of `ParamSpec` rows (name, default, kind, one-line doc taken from the
field's trailing `# comment`) that a node declares as parameters, and rebuilds the dataclass from
the values the node got back. The same rows let CI check that every YAML file in `config/` names
only real fields, and that every field is documented, with no ROS installed.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Kinds map one to one onto rclpy Parameter.Type values (see meld_ros/common.py).
SCALAR_KINDS = {"bool": bool, "int": int, "float": float, "str": str}
ARRAY_KINDS = {"bool_array": bool, "int_array": int, "float_array": float, "str_array": str}

_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


class ParamError(ValueError):
    """A parameter value or a config file does not fit the node's config dataclass."""


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter derived from one dataclass field."""

    name: str  # parameter name (= field name)
    kind: str  # one of SCALAR_KINDS or ARRAY_KINDS
    default: Any  # default value as ROS sees it (tuples become lists)
    doc: str  # one-line description (the field's comment)


def _kind_of(annotation: Any, cls: type, name: str) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = text.replace(" ", "")
    if text in SCALAR_KINDS:
        return text
    match = re.fullmatch(r"(?:tuple|Tuple)\[(bool|int|float|str),\.\.\.\]", text)
    if match:
        return f"{match.group(1)}_array"
    raise TypeError(
        f"{cls.__name__}.{name}: type {text!r} cannot be a ROS parameter; use bool, int, float, str "
        "or tuple[<one of those>, ...]"
    )


def field_docs(cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field in the class body, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            match = _FIELD_COMMENT.match(line)
            if match:
                docs[match.group(1)] = match.group(2)
    return docs


def param_specs(cls: type) -> list[ParamSpec]:
    """One ParamSpec per field of the flat config dataclass `cls` (every field needs a default)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    docs = field_docs(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} has no default; a ROS parameter needs one")
        kind = _kind_of(f.type, cls, f.name)
        if kind in ARRAY_KINDS:
            if len(default) == 0:
                raise TypeError(f"{cls.__name__}.{f.name}: an empty tuple default has no ROS type")
            default = list(default)
        specs.append(ParamSpec(name=f.name, kind=kind, default=default, doc=docs.get(f.name, "")))
    return specs


def _coerce(spec: ParamSpec, value: Any, cls: type) -> Any:
    where = f"{cls.__name__}.{spec.name}"
    if spec.kind in SCALAR_KINDS:
        want = SCALAR_KINDS[spec.kind]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ParamError(f"{where} must be {spec.kind}, got {value!r}")
        return value
    want = ARRAY_KINDS[spec.kind]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "tolist"):
        raise ParamError(f"{where} must be a list of {want.__name__}, got {value!r}")
    items = list(value.tolist() if hasattr(value, "tolist") else value)
    out = []
    for item in items:
        if want is float and isinstance(item, int) and not isinstance(item, bool):
            item = float(item)
        if not isinstance(item, want) or (want is int and isinstance(item, bool)):
            raise ParamError(f"{where} must be a list of {want.__name__}, got element {item!r}")
        out.append(item)
    return tuple(out)


def config_from_params(cls: type, values: Mapping[str, Any]):
    """Build `cls` from parameter values; unknown names raise, missing names keep their default."""
    specs = {s.name: s for s in param_specs(cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ParamError(
            f"unknown parameter(s) {unknown} for {cls.__name__}; known: {sorted(specs)}")
    kwargs = {name: _coerce(specs[name], value, cls) for name, value in values.items()}
    return cls(**kwargs)


def ros_parameters_of(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`{node_name: {param: value}}` from a ROS params YAML document (`node: {ros__parameters: ...}`)."""
    out: dict[str, dict[str, Any]] = {}
    for node, body in document.items():
        if not isinstance(body, Mapping) or "ros__parameters" not in body:
            raise ParamError(f"entry {node!r} has no ros__parameters block")
        out[str(node)] = dict(body["ros__parameters"])
    return out
