"""Shared pytest set-up: offscreen rendering for MuJoCo and quiet, deterministic torch."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")


import pytest  # noqa: E402


@pytest.fixture
def one_thread():
    """Tiny models run faster on one torch thread, and far faster on a busy 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
