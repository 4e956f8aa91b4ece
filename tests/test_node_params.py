"""Node parameters: dataclass fields <-> ROS parameters, and config/*.yaml checked against them."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from meld_core.bridge.node_params import NODE_PARAMS, configs_from_params, flatten_yaml_params
from meld_core.bridge.paramspec import ParamError, config_from_params, param_specs, ros_parameters_of

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Example:
    """A flat config."""

    rate: float = 2.0  # how often
    name: str = "x"  # what it is called
    count: int = 3  # how many
    flags: tuple[bool, ...] = (True,)  # switches
    gains: tuple[float, ...] = (1.0, 2.0)  # per joint


def test_param_specs_have_kinds_defaults_and_docs():
    specs = {s.name: s for s in param_specs(Example)}
    assert specs["rate"].kind == "float" and specs["rate"].doc == "how often"
    assert specs["gains"].kind == "float_array" and specs["gains"].default == [1.0, 2.0]
    assert specs["flags"].kind == "bool_array" and specs["count"].kind == "int"


def test_config_from_params_coerces_and_rejects():
    cfg = config_from_params(Example, {"rate": 3, "gains": [1, 2, 3]})
    assert cfg.rate == 3.0 and isinstance(cfg.rate, float) and cfg.gains == (1.0, 2.0, 3.0)
    with pytest.raises(ParamError, match="unknown"):
        config_from_params(Example, {"speed": 1.0})
    with pytest.raises(ParamError, match="must be int"):
        config_from_params(Example, {"count": 2.5})
    with pytest.raises(ParamError, match="must be int"):
        config_from_params(Example, {"count": True})
    with pytest.raises(ParamError, match="list of float"):
        config_from_params(Example, {"gains": "1,2"})


def test_unsupported_field_types_are_refused():
    @dataclass(frozen=True)
    class Bad:
        value: dict = None  # not a ROS type

    with pytest.raises(TypeError, match="cannot be a ROS parameter"):
        param_specs(Bad)


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_every_node_parameter_is_documented_and_typed(node):
    for group in NODE_PARAMS[node]:
        for spec in group.specs():
            assert spec.doc, f"{node}: {group.prefix}{spec.name} has no one-line comment"
            assert spec.default is not None


def test_every_node_has_a_config_file_and_it_maps_onto_its_dataclasses():
    for node in NODE_PARAMS:
        path = ROOT / "config" / f"{node}.yaml"
        assert path.exists(), f"config/{node}.yaml is missing"
        entries = ros_parameters_of(yaml.safe_load(path.read_text()))
        assert entries, f"{path} has no node entries"
        for name, params in entries.items():
            flat = flatten_yaml_params(params)
            configs_from_params(node, flat)  # raises on unknown keys or wrong types
            known = {g.prefix + s.name for g in NODE_PARAMS[node] for s in g.specs()}
            assert set(flat) == known, (
                f"{path}:{name} should list every parameter: missing {known - set(flat)}"
            )


def test_a_misspelt_yaml_key_is_caught(tmp_path):
    with pytest.raises(ParamError, match="unknown parameter"):
        configs_from_params("arm_node", {"deadman_period": 0.5})
    with pytest.raises(ParamError, match="unknown parameter"):
        configs_from_params("agent_node", {"io.image_max_age": 0.5})


def test_agent_env_group_uses_a_prefix_and_excludes_derived_fields():
    run, io = configs_from_params("agent_node", {"mode": "eval", "io.image_max_age_s": 0.3})
    assert run.mode == "eval" and io.image_max_age_s == 0.3
    with pytest.raises(ParamError):
        configs_from_params("agent_node", {"io.episode_length": 10})  # comes from the run config
