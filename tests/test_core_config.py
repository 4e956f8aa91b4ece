"""ModelConfig / SACConfig / ReplayConfig / DeviceConfig: reference defaults, validation, YAML round trip."""

import dataclasses
import math

import pytest
import yaml

from meld_core.config import DeviceConfig, ModelConfig, ReplayConfig, SACConfig, config_from_dict


def test_defaults_are_the_reference_runnable_settings():
    m = ModelConfig()
    assert (m.latent1_size, m.latent2_size, m.base_depth, m.hidden) == (64, 32, 64, 512)
    assert m.image_shape == (128, 64, 3)
    assert m.decoder_std == pytest.approx(math.sqrt(0.1))
    assert (m.reward_tile, m.reward_decoder_std, m.reward_loss_weight) == (32, 0.2, 10.0)
    assert (m.lr, m.std_offset, m.leaky_relu_slope, m.grad_clip) == (1e-4, 1e-5, 0.2, None)
    assert m.belief_size == 192
    s = SACConfig()
    assert (s.actor_lr, s.critic_lr, s.alpha_lr, s.gamma, s.tau) == (3e-4, 3e-4, 3e-4, 0.99, 0.005)
    assert (s.initial_alpha, s.target_entropy, s.batch_size, s.td_loss_weight) == (1.0, None, 512, 0.5)
    r = ReplayConfig()
    assert (r.capacity_episodes_per_task, r.model_batch_frames, r.offline_ratio) == (10000, 512, 0.3)


@pytest.mark.parametrize("cls", [ModelConfig, SACConfig, ReplayConfig, DeviceConfig])
def test_yaml_round_trip(cls):
    cfg = cls()
    text = yaml.safe_dump(dataclasses.asdict(cfg))
    assert config_from_dict(cls, yaml.safe_load(text)) == cfg


def test_round_trip_of_non_defaults_and_nested():
    @dataclasses.dataclass(frozen=True)
    class Outer:
        model: ModelConfig = ModelConfig()
        sac: SACConfig = SACConfig()

    cfg = Outer(ModelConfig(image_shape=(64, 64, 3), hidden_size=128, reward_decoder_std=None),
                SACConfig(actor_hidden=(64, 32)))
    back = config_from_dict(Outer, yaml.safe_load(yaml.safe_dump(dataclasses.asdict(cfg))))
    assert back == cfg and isinstance(back.model.image_shape, tuple) and back.sac.actor_hidden == (64, 32)


def test_unknown_keys_are_rejected_with_their_names():
    with pytest.raises(ValueError, match="latent3_size"):
        config_from_dict(ModelConfig, {"latent3_size": 4})


@pytest.mark.parametrize("shape", [(64, 64, 3), (128, 64, 3), (32, 32, 3), (16, 16, 3), (64, 32, 3)])
def test_supported_image_shapes(shape):
    assert ModelConfig(image_shape=shape).image_shape == shape


@pytest.mark.parametrize("shape", [(64, 128, 3), (40, 40, 3), (60, 60, 3), (64, 64, 1), (192, 64, 3)])
def test_unsupported_image_shapes_raise(shape):
    with pytest.raises(ValueError, match="image_shape"):
        ModelConfig(image_shape=shape)


@pytest.mark.parametrize(
    "cls, kw",
    [
        (ModelConfig, {"reward_input": "shaped"}),
        (ModelConfig, {"reward_target": "none"}),
        (ModelConfig, {"decoder_std": 0.0}),
        (ModelConfig, {"latent1_size": 0}),
        (SACConfig, {"gamma": 1.5}),
        (SACConfig, {"tau": 0.0}),
        (SACConfig, {"td_reward": "previous"}),
        (SACConfig, {"td_sparse_weight": -1.0}),
        (SACConfig, {"td_dense_weight": -0.5}),
        (SACConfig, {"td_dense_weight": 0.0}),
        (SACConfig, {"td_dense_weight_later": -1.0}),
        (SACConfig, {"td_dense_weight_later": 0.0}),
        (SACConfig, {"n_step": 0}),
        (SACConfig, {"n_step": 2.5}),
        (SACConfig, {"reward_memory": float("nan")}),
        (SACConfig, {"actor_hidden": ()}),
        (ReplayConfig, {"offline_ratio": 1.5}),
        (ReplayConfig, {"num_tasks_per_train": 0}),
        (DeviceConfig, {"device": "tpu"}),
    ],
)
def test_validation(cls, kw):
    with pytest.raises(ValueError):
        cls(**kw)


@pytest.mark.parametrize(
    "cls, data, message",
    [
        (ModelConfig, {"lr": "1e-3"},
         "ModelConfig.lr: expected float, got the string '1e-3' (YAML reads 1e-3"),
        (ModelConfig, {"base_depth": 4.5}, "ModelConfig.base_depth: expected int, got float 4.5"),
        (ModelConfig, {"base_depth": True}, "ModelConfig.base_depth: expected int, got bool True"),
        (ModelConfig, {"hidden_size": "big"}, "ModelConfig.hidden_size: expected int or null"),
        (ModelConfig, {"image_shape": [64, 64]}, "ModelConfig.image_shape: expected a list of 3"),
        (SACConfig, {"actor_hidden": [64, 6.5]}, "SACConfig.actor_hidden[1]: expected int"),
        (SACConfig, {"td_across_resets": "yes"}, "SACConfig.td_across_resets: expected true or false"),
        (SACConfig, {"td_reward": 1}, "SACConfig.td_reward: expected str, got int 1"),
        (DeviceConfig, {"cpu_bf16": 1}, "DeviceConfig.cpu_bf16: expected bool or null, got int 1"),
    ],
)
def test_values_of_the_wrong_type_are_rejected_with_the_field_and_type(cls, data, message):
    with pytest.raises(ValueError) as exc:
        config_from_dict(cls, data)
    assert str(exc.value).startswith(message)


def test_an_empty_or_incomplete_config_names_what_is_missing():
    from meld_core.config import RunConfig

    with pytest.raises(ValueError, match=r"RunConfig: expected a mapping of RunConfig fields, got null \(an"):
        config_from_dict(RunConfig, None)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['env_config', 'model'"):
        config_from_dict(RunConfig, {"env": "point_nav"})
    assert config_from_dict(ModelConfig, {"lr": 1, "reward_decoder_std": None}).lr == 1.0  # ints are floats


def test_overrides_set_dotted_keys_and_are_validated():
    from meld_core.config import config_diff
    from meld_core.config.presets import preset_config

    base = preset_config("point_nav", "smoke")
    cfg = base.with_overrides({"sac.batch_size": 128, "env_config.episode_length": 30,
                               "model.hidden_size": None})
    assert cfg.sac.batch_size == 128 and cfg.model.hidden_size is None
    assert cfg.env_config["episode_length"] == 30 and cfg.build_env_config().episode_length == 30
    assert [k for k, _, _ in config_diff(base.identity(), cfg.identity())] == [
        "env_config.episode_length", "model.hidden_size", "sac.batch_size"]
    for overrides, message in (({"sac.batch_sise": 3}, r"RunConfig.sac: unknown key\(s\) \['batch_sise'\]"),
                               ({"sacc.gamma": 0.5}, "sacc is not a section"),
                               ({"env_config.episode_lenght": 3}, "RunConfig.env_config: unknown key"),
                               ({"env_config.episode_length": 2.5},
                                "env_config.episode_length: expected int"),
                               ({"sac.gamma": 1.5}, "SACConfig.gamma must be in"),
                               ({"sac.reward_memory": 0.5, "model.reward_input": "none"},
                                "sac.reward_memory needs a reward in the posterior")):
        with pytest.raises(ValueError, match=message):
            base.with_overrides(overrides)


def test_identity_compares_the_resolved_env_config():
    from meld_core.config.presets import preset_config

    paper = preset_config("point_nav", "paper")
    spelled_out = dataclasses.replace(paper, env_config=dataclasses.asdict(paper.build_env_config()))
    assert spelled_out.identity() == paper.identity()
    assert dataclasses.replace(paper, device=DeviceConfig(device="cpu")).identity() == paper.identity()
