"""Headless MuJoCo rendering of several fixed cameras, independent of import order.

    renderer = OffscreenRenderer(model, size=64, supersample=2)   # any thread may render (one at a time)
    images = renderer.render(data, ["scene", "wrist"])      # {"scene": (64, 64, 3) uint8, ...}
    renderer.close()

`mujoco.Renderer` picks its OpenGL back-end when `mujoco` is first imported, so a program that
imported mujoco before setting MUJOCO_GL cannot render headless with it. This renderer creates
its own EGL or OSMesa context (MUJOCO_GL=egl, the default, or osmesa), so it works whatever was
imported first. All cameras of one call are drawn side by side into one buffer and read back
with a single read (one pipeline flush per step instead of one per camera). Shadows, reflections
and the skybox are off and there is no MSAA: the slow parts on a software (llvmpipe) renderer.
Anti-aliasing, when wanted, is supersampling: draw at `supersample` times the size, box-average.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import numpy as np


class RenderError(RuntimeError):
    """Offscreen rendering is unavailable (no EGL/OSMesa library, or a clashing OpenGL platform)."""


def _gl_context_class():
    backend = os.environ.get("MUJOCO_GL", "egl").lower().strip() or "egl"
    try:
        if backend == "osmesa":
            from mujoco.osmesa import GLContext
        elif backend == "egl":
            from mujoco.egl import GLContext
        else:
            raise RenderError(f"MUJOCO_GL={backend!r}: headless rendering needs MUJOCO_GL=egl or osmesa")
    except ImportError as exc:
        raise RenderError(
            f"cannot load the {backend} OpenGL back-end ({exc}). Install libegl1 libgl1-mesa-dri "
            "libosmesa6 (./install.sh does); if PYOPENGL_PLATFORM is set, it must match MUJOCO_GL."
        ) from exc
    return GLContext


def box_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Average `factor` x `factor` pixel blocks of a uint8 (H, W, C) image (H, W divisible)."""
    if factor == 1:
        return image.copy()
    acc = np.zeros((image.shape[0] // factor, image.shape[1] // factor, image.shape[2]), np.uint16)
    for i in range(factor):
        for j in range(factor):
            acc += image[i::factor, j::factor]
    return ((acc + (factor * factor) // 2) // (factor * factor)).astype(np.uint8)


class OffscreenRenderer:
    """Renders named fixed cameras of a model at `size` x `size` pixels each."""

    def __init__(self, model, size: int, supersample: int = 1, max_cameras: int = 2) -> None:
        import mujoco

        if size < 1 or supersample < 1 or max_cameras < 1:
            raise ValueError("size, supersample and max_cameras must be >= 1")
        self._mj = mujoco
        self.model = model
        self.size = size
        self.supersample = supersample
        self._px = size * supersample  # pixels per camera actually drawn
        width, height = self._px * max_cameras, self._px
        self.max_cameras = max_cameras
        context_class = _gl_context_class()
        # The offscreen buffer is allocated at offwidth x offheight and cleared whole each frame.
        model.vis.global_.offwidth, model.vis.global_.offheight = width, height
        try:
            self._gl = context_class(width, height)
            with self._gl.as_current():
                self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100.value)
                mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._ctx)
        except Exception as exc:  # mujoco.FatalError, EGL/OSMesa errors
            raise RenderError(
                f"could not create an offscreen OpenGL context ({exc}). Install libegl1 "
                "libgl1-mesa-dri libosmesa6 (./install.sh does) or try MUJOCO_GL=osmesa."
            ) from exc
        self._scene = mujoco.MjvScene(model, maxgeom=max(200, 4 * model.ngeom))
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX):
            self._scene.flags[flag] = False
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self.option = mujoco.MjvOption()  # what is drawn (e.g. site groups); callers may change it
        self._camera_ids: dict[str, int] = {}

    def _camera_id(self, name: str) -> int:
        cid = self._camera_ids.get(name)
        if cid is None:
            cid = self._mj.mj_name2id(self.model, self._mj.mjtObj.mjOBJ_CAMERA, name)
            if cid < 0:
                raise ValueError(f"the model has no camera named {name!r}")
            self._camera_ids[name] = cid
        return cid

    def render(self, data, cameras: Sequence[str]) -> dict[str, np.ndarray]:
        """One (size, size, 3) uint8 image per camera name, of the current state of `data`."""
        mj = self._mj
        if self._gl is None:
            raise RenderError("render() called after close()")
        if not 1 <= len(cameras) <= self.max_cameras:
            raise ValueError(f"render 1..{self.max_cameras} cameras per call, got {len(cameras)}")
        ids = [self._camera_id(name) for name in cameras]
        px = self._px
        width = px * len(cameras)
        out = np.empty((px, width, 3), np.uint8)
        # Current only while drawing, so that any thread may render next (one at a time).
        with self._gl.as_current():
            for i, cid in enumerate(ids):
                self._camera.fixedcamid = cid
                mj.mjv_updateScene(self.model, data, self.option, None, self._camera,
                                   mj.mjtCatBit.mjCAT_ALL.value, self._scene)
                mj.mjr_render(mj.MjrRect(i * px, 0, px, px), self._scene, self._ctx)
            mj.mjr_readPixels(out, None, mj.MjrRect(0, 0, width, px), self._ctx)
        out = out[::-1]  # OpenGL rows start at the bottom
        return {name: box_downsample(out[:, i * px:(i + 1) * px], self.supersample)
                for i, name in enumerate(cameras)}

    def close(self) -> None:
        if self._gl is not None:
            with self._gl.as_current():
                self._ctx.free()
            self._gl.free()
            self._gl = None

    def __del__(self) -> None:  # best effort at interpreter shutdown; call close()
        with contextlib.suppress(Exception):
            self.close()
