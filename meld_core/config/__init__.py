"""Run configuration: one frozen dataclass per component (`core`) and the named presets (`presets`)."""

from meld_core.config.core import (
    DEVICES,
    REWARD_INPUTS,
    REWARD_TARGETS,
    TD_REWARD_FRAMES,
    TRAIN_MODES,
    Z2_TRANSITIONS,
    DeviceConfig,
    ModelConfig,
    ReplayConfig,
    RunConfig,
    SACConfig,
    TrainConfig,
    config_diff,
    config_from_dict,
    flatten,
    format_diff,
    supported_image_shape,
)

__all__ = [
    "DEVICES", "REWARD_INPUTS", "REWARD_TARGETS", "TD_REWARD_FRAMES", "TRAIN_MODES", "Z2_TRANSITIONS",
    "DeviceConfig", "ModelConfig", "ReplayConfig", "RunConfig", "SACConfig", "TrainConfig", "config_diff",
    "config_from_dict", "flatten", "format_diff", "supported_image_shape",
]
