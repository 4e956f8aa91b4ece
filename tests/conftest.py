"""Shared pytest set-up: offscreen rendering for MuJoCo and quiet, deterministic torch."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
