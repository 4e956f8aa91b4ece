"""Tiny configurations and synthetic episodes for tests and smoke runs of the MELD core."""

from __future__ import annotations

import numpy as np

from meld_core.algo.replay import Episode
from meld_core.config import ModelConfig, SACConfig


def tiny_model_config(image_shape: tuple[int, int, int] = (32, 32, 3), **overrides) -> ModelConfig:
    """A model small enough for unit tests on 2 CPU cores (same architecture, small widths)."""
    kw = dict(image_shape=image_shape, latent1_size=8, latent2_size=4, base_depth=4, hidden_size=32,
              reward_tile=4)
    kw.update(overrides)
    return ModelConfig(**kw)


def tiny_sac_config(**overrides) -> SACConfig:
    kw = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64)
    kw.update(overrides)
    return SACConfig(**kw)


def random_episode(rng: np.random.Generator, task_index: int, num_steps: int, image_shape, action_dim: int,
                   episode_id: int = -1) -> Episode:
    """An episode of random frames, actions in [-1, 1] and rewards (0 on the reset frame)."""
    n = num_steps + 1
    dense = rng.normal(size=n).astype(np.float32)
    dense[0] = 0.0
    sparse = np.where(dense > 1.0, dense, 0.0).astype(np.float32)
    return Episode(
        images=rng.integers(0, 256, (n, *image_shape), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (n, action_dim)).astype(np.float32),
        dense_rewards=dense,
        sparse_rewards=sparse,
        successes=sparse > 0,
        task_index=task_index,
        episode_id=episode_id,
        meta={"position_in_trial": 0},
    )
