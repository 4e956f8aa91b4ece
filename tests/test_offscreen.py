"""Headless rendering: works whatever imported mujoco first; supersampling; errors."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from meld_core.envs.offscreen import OffscreenRenderer, RenderError, box_downsample

pytestmark = pytest.mark.render


def test_box_downsample_averages_blocks():
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2, :2] = 200
    image[0, 0] = 100  # block mean 175
    out = box_downsample(image, 2)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] == 175 and out[1, 1, 0] == 0
    assert np.array_equal(box_downsample(image, 1), image)


def test_env_renders_when_mujoco_was_imported_first():
    """Regression: mujoco.Renderer fixes its GL back-end at `import mujoco` time, so importing mujoco
    before MUJOCO_GL was set made every render fail; our renderer makes its own EGL context."""
    code = textwrap.dedent("""
        import mujoco  # first, with MUJOCO_GL unset
        from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
        env = WidowXInsertionEnv(WidowXInsertionConfig(image_size=16, num_train_tasks=1, num_eval_tasks=1))
        image = env.reset().image
        assert image.shape == (32, 16, 3) and image.std() > 5, image.std()
        env.close()
        print("ok")
    """)
    environ = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=environ)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_camera_errors():
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><camera name='c' pos='0 0 1'/><geom type='sphere' size='0.1'/></worldbody>"
        "</mujoco>")
    data = mujoco.MjData(model)
    renderer = OffscreenRenderer(model, size=8)
    assert renderer.render(data, ["c"])["c"].shape == (8, 8, 3)
    with pytest.raises(ValueError):
        renderer.render(data, ["nope"])
    with pytest.raises(ValueError):
        renderer.render(data, ["c", "c", "c"])
    renderer.close()
    with pytest.raises(RenderError):
        renderer.render(data, ["c"])


def test_another_thread_can_render():
    """Regression: the GL context stayed current in the creating thread, so a ROS executor thread
    rendering next failed with EGL_BAD_ACCESS."""
    import threading

    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv

    env = WidowXInsertionEnv(WidowXInsertionConfig(image_size=16, num_train_tasks=1, num_eval_tasks=1))
    first = env.reset().image
    result = {}

    def work():
        try:
            result["images"] = env.camera_images()
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert "error" not in result, result.get("error")
    assert np.array_equal(result["images"]["scene"], first[:16])
    assert np.array_equal(env.reset().image, first)
    env.close()


@pytest.mark.parametrize("backend", ["osmesa", "egl"])
def test_backends(backend):
    code = textwrap.dedent("""
        from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
        env = WidowXInsertionEnv(WidowXInsertionConfig(image_size=16, num_train_tasks=1, num_eval_tasks=1))
        assert env.reset().image.std() > 5
        env.close()
        print("ok")
    """)
    environ = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}
    environ["MUJOCO_GL"] = backend
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=environ)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
