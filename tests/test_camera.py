"""Cameras: config, source kinds, the OpenCV camera on a video file, the reconnecting supervisor."""

import time

import cv2
import numpy as np
import pytest

from meld_core.hardware.camera import (
    Camera,
    CameraConfig,
    CameraError,
    CameraSupervisor,
    OpenCVCamera,
    source_kind,
)
from meld_core.hardware.diagnostics import DiagLevel
from meld_core.testing.fake_camera import FakeCamera


def test_source_kinds():
    assert source_kind("0") == "index" and source_kind(" 2 ") == "index"
    assert source_kind("/dev/video0") == "device" and source_kind("/dev/meld_scene_cam") == "device"
    assert source_kind("replay/scene.mp4") == "file"


@pytest.mark.parametrize(
    "bad",
    [
        dict(width=0),
        dict(fps=0),
        dict(fourcc="MJ"),
        dict(exposure=0.0),
        dict(reconnect_initial_s=10.0, reconnect_max_s=1.0),
        dict(source=""),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        CameraConfig(**bad)


def test_fake_and_opencv_cameras_implement_the_interface():
    assert isinstance(FakeCamera(), Camera)
    assert isinstance(OpenCVCamera(CameraConfig()), Camera)


def write_video(path, frames=6, size=(80, 60)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    assert writer.isOpened()
    for k in range(frames):
        bgr = np.zeros((size[1], size[0], 3), np.uint8)
        bgr[..., 2] = 40 * k  # red in RGB grows frame by frame
        writer.write(bgr)
    writer.release()


def test_video_file_replays_rgb_at_the_configured_size_and_loops(tmp_path):
    path = tmp_path / "scene.avi"
    write_video(path, frames=4)
    cfg = CameraConfig(source=str(path), width=40, height=30, fps=200.0)
    with OpenCVCamera(cfg) as cam:
        frames = [cam.read() for _ in range(6)]  # 4 frames, then it loops
    assert all(f.image.shape == (30, 40, 3) and f.image.dtype == np.uint8 for f in frames)
    reds = [int(f.image[..., 0].mean()) for f in frames]
    assert reds[1] > reds[0] + 20  # RGB order: the red channel carries the ramp
    assert abs(reds[4] - reds[0]) < 10  # looped back to the first frame
    assert [f.index for f in frames] == [1, 2, 3, 4, 5, 6]
    assert all(b.stamp >= a.stamp for a, b in zip(frames, frames[1:]))


def test_video_file_is_paced_to_fps(tmp_path):
    path = tmp_path / "scene.avi"
    write_video(path, frames=4)
    with OpenCVCamera(CameraConfig(source=str(path), fps=20.0)) as cam:
        start = time.monotonic()
        for _ in range(4):
            cam.read()
        assert time.monotonic() - start >= 3 * 0.05 * 0.8


def test_video_without_loop_ends_with_a_camera_error(tmp_path):
    path = tmp_path / "scene.avi"
    write_video(path, frames=2)
    with OpenCVCamera(CameraConfig(source=str(path), fps=200.0, loop_video=False)) as cam:
        cam.read()
        cam.read()
        with pytest.raises(CameraError):
            cam.read()


def test_missing_sources_raise_with_a_hint(tmp_path):
    with pytest.raises(CameraError, match="does not exist"):
        OpenCVCamera(CameraConfig(source=str(tmp_path / "none.mp4"))).connect()
    with pytest.raises(CameraError, match="v4l2-ctl"):
        OpenCVCamera(CameraConfig(source="/dev/video_meld_missing")).connect()


def test_supervisor_reconnects_with_exponential_backoff():
    cam = FakeCamera(CameraConfig(source="fake", reconnect_initial_s=0.5, reconnect_max_s=2.0))
    sup = CameraSupervisor(cam)
    assert sup.poll(0.0) is not None and cam.connects == 1
    cam.unplug()
    assert sup.poll(0.1) is None  # the read fails: a drop
    assert sup.drops == 1 and not sup.is_up
    assert sup.status(0.1).level == DiagLevel.ERROR
    assert sup.poll(0.2) is None and cam.connects == 1  # backoff: no reopen yet
    assert sup.poll(0.7) is None and sup.failed_opens == 1  # reopen at 0.6 fails (still unplugged)
    retry = sup.next_retry_at
    assert retry == pytest.approx(0.7 + 1.0)  # the wait doubled
    cam.replug()
    assert sup.poll(retry - 0.01) is None
    frame = sup.poll(retry)
    assert frame is not None and sup.reconnects == 1 and sup.frames == 2
    status = sup.status(retry)
    assert status.level == DiagLevel.WARN and status.values["reconnects"] == "1"


def test_supervisor_backoff_is_capped():
    cam = FakeCamera(CameraConfig(source="fake", reconnect_initial_s=0.5, reconnect_max_s=1.0))
    cam.unplug()
    sup = CameraSupervisor(cam)
    t, waits = 0.0, []
    for _ in range(5):
        sup.poll(t)
        waits.append(sup.next_retry_at - t)
        t = sup.next_retry_at
    assert waits == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0])
    assert sup.failed_opens == 5


def test_transient_read_failures_recover():
    cam = FakeCamera(CameraConfig(source="fake"))
    sup = CameraSupervisor(cam)
    sup.poll(0.0)
    cam.fail_reads(1)
    assert sup.poll(0.1) is None
    assert sup.poll(0.1 + 0.5) is not None
    assert sup.drops == 1 and sup.reconnects == 1


def test_disconnect_from_another_thread_waits_for_a_read_in_progress(tmp_path):
    # camera_node closes the camera on exit while its grab timer may be inside read().
    import threading

    path = tmp_path / "scene.avi"
    write_video(path, frames=4)
    cam = OpenCVCamera(CameraConfig(source=str(path), fps=5.0))  # each read waits ~0.2 s (pacing)
    cam.connect()
    cam.read()
    errors = []

    def reader():
        try:
            cam.read()
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.05)
    cam.disconnect()
    t.join(timeout=2.0)
    assert not errors and not cam.is_connected
    with pytest.raises(CameraError, match="before connect"):
        cam.read()
