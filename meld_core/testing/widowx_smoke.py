"""A tiny RunConfig for the WidowX insertion family: seconds of compute, for CI and launch tests.

    meld_core.testing.widowx_smoke.smoke_run_config(iterations=1)

Images 32 px per camera (stacked 64x32), T=3, E=2, two train tasks, a few-hundred-parameter
model. It exercises every part of a run (warm-up, pre-training, one iteration, checkpoint) but
learns nothing; `write_smoke_config(path)` writes it as the YAML the agent node's `run_config`
parameter reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from meld_core.config import DeviceConfig, ModelConfig, ReplayConfig, RunConfig, SACConfig, TrainConfig


def smoke_run_config(iterations: int = 1, episode_length: int = 3) -> RunConfig:
    T, E, n_train = episode_length, 2, 2
    return RunConfig(
        env="widowx_insertion",
        env_config={
            "image_size": 32,
            "episode_length": T,
            "num_train_tasks": n_train,
            "num_eval_tasks": 1,
            "video_size": 64,
        },
        model=ModelConfig(
            image_shape=(64, 32, 3),
            latent1_size=8,
            latent2_size=8,
            base_depth=4,
            hidden_size=32,
            reward_tile=8,
        ),
        sac=SACConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=32),
        replay=ReplayConfig(num_tasks_per_train=n_train, model_batch_frames=2 * (T + 1) * E, fsync=False),
        device=DeviceConfig(device="cpu", cpu_bf16=False, num_threads=1),
        train=TrainConfig(
            episodes_per_trial=E,
            init_collect_trials_per_task=1,
            init_model_train_ratio=0.25,
            model_train_ratio=0.25,
            ac_train_ratio=0.25,
            num_iterations=iterations,
            eval_interval=1000,
            eval_trials=1,
            video_trials=0,
            checkpoint_interval=1,
            keep_checkpoints=1,
            log_interval=1,
        ),
        preset="smoke",
    )


def write_smoke_config(path: str | Path, iterations: int = 1) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(dataclasses.asdict(smoke_run_config(iterations)), sort_keys=False))
    return path
