"""Cameras: one small interface, an OpenCV implementation, and a supervisor that reconnects.

    from meld_core.hardware.camera import CameraConfig, OpenCVCamera, CameraSupervisor
    sup = CameraSupervisor(OpenCVCamera(CameraConfig(source="/dev/video0")), CameraConfig())
    frame = sup.poll(time.monotonic())   # Frame or None while the camera is down

`Camera` is the device interface (`connect`, `disconnect`, `is_connected`, `read`). `OpenCVCamera`
opens a device index ("0"), a /dev path ("/dev/video2", or a udev symlink such as
"/dev/meld_scene_cam") or a video file (replayed at the configured rate and looped), and returns
RGB frames. `CameraSupervisor` owns the connect/read/reconnect cycle with exponential backoff and
keeps the counters that the ROS camera node reports in its diagnostics; it never raises on a
camera that drops, because a USB webcam that drops for a second must not end an 8-hour run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from meld_core.hardware.diagnostics import DiagLevel, DiagStatus

log = logging.getLogger(__name__)

_VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class CameraError(RuntimeError):
    """A camera could not be opened or stopped delivering frames."""


@dataclass(frozen=True)
class CameraConfig:
    """One camera: where frames come from, what is asked of the driver, how drops are handled."""

    name: str = "scene"  # role of the camera ("scene" or "wrist"); used in logs and diagnostics
    source: str = "0"  # device index ("0"), /dev path ("/dev/video2") or a video file (replayed, looped)
    width: int = 640  # requested capture width in pixels (the driver may pick the nearest mode)
    height: int = 480  # requested capture height in pixels
    fps: float = 30.0  # capture and publish rate in Hz (video files are paced to this rate)
    exposure: float = -1.0  # manual exposure in V4L2 units (e.g. 100-300); -1 keeps auto exposure
    fourcc: str = "MJPG"  # V4L2 pixel format ("MJPG" saves USB bandwidth for two cameras; "" = default)
    frame_id: str = "scene_camera_optical_frame"  # frame_id written into every image header
    topic: str = "image_raw"  # image topic, relative to the node namespace
    read_timeout_s: float = 1.0  # a read that takes longer than this counts as a drop
    reconnect_initial_s: float = 0.5  # first wait before reopening a dropped camera
    reconnect_max_s: float = 5.0  # the wait doubles after each failed reopen up to this cap
    loop_video: bool = True  # restart a video file at its end (replay); false: end of file is a drop

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("CameraConfig.name must not be empty")
        if not self.source:
            raise ValueError("CameraConfig.source must be a device index, a /dev path or a video file")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"CameraConfig width/height must be > 0, got {self.width}x{self.height}")
        if not 0 < self.fps <= 240:
            raise ValueError(f"CameraConfig.fps must be in (0, 240], got {self.fps}")
        if self.exposure != -1.0 and self.exposure <= 0:
            raise ValueError(f"CameraConfig.exposure must be -1 (auto) or > 0, got {self.exposure}")
        if self.fourcc and len(self.fourcc) != 4:
            raise ValueError(f"CameraConfig.fourcc must be 4 characters or empty, got {self.fourcc!r}")
        if self.read_timeout_s <= 0:
            raise ValueError("CameraConfig.read_timeout_s must be > 0")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError("CameraConfig needs 0 < reconnect_initial_s <= reconnect_max_s")
        if not self.frame_id or not self.topic:
            raise ValueError("CameraConfig.frame_id and .topic must not be empty")

    @property
    def is_video_file(self) -> bool:
        return source_kind(self.source) == "file"


def source_kind(source: str) -> str:
    """'index' for "0"/"1"..., 'device' for /dev paths, 'file' for anything else (a video file)."""
    if source.strip().isdigit():
        return "index"
    if source.startswith("/dev/"):
        return "device"
    return "file"


@dataclass(frozen=True)
class Frame:
    """One captured image."""

    image: np.ndarray  # uint8 RGB (H, W, 3)
    stamp: float  # time.monotonic() right after the grab returned
    index: int  # running frame count since connect


@runtime_checkable
class Camera(Protocol):
    """The device interface every camera (real or fake) implements."""

    config: CameraConfig

    def connect(self) -> None:
        """Open the device; raises CameraError with the source and a hint when it cannot."""

    def disconnect(self) -> None:
        """Release the device (idempotent)."""

    @property
    def is_connected(self) -> bool: ...

    def read(self) -> Frame:
        """Grab the next frame; raises CameraError when none comes."""


class OpenCVCamera:
    """A V4L2 webcam or a video file through cv2.VideoCapture."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self._lock = threading.Lock()  # a read in progress and a disconnect from another thread
        self._cap = None
        self._count = 0
        self._next_file_frame = 0.0

    def __enter__(self) -> OpenCVCamera:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    @property
    def is_connected(self) -> bool:
        return self._cap is not None

    def connect(self) -> None:
        import cv2

        if self._cap is not None:
            return
        cfg = self.config
        kind = source_kind(cfg.source)
        if kind == "file" and not os.path.isfile(cfg.source):
            raise CameraError(f"camera {cfg.name}: video file {cfg.source!r} does not exist")
        if kind == "device" and not os.path.exists(cfg.source):
            raise CameraError(
                f"camera {cfg.name}: {cfg.source} does not exist; check the USB cable and "
                "`v4l2-ctl --list-devices` (README: hardware bring-up, udev rules)")
        if kind == "index":
            cap = cv2.VideoCapture(int(cfg.source), cv2.CAP_V4L2)
        elif kind == "device":
            cap = cv2.VideoCapture(cfg.source, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(cfg.source)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"camera {cfg.name}: OpenCV could not open {cfg.source!r}; is another process using "
                "it, or are two webcams sharing one USB controller (try fourcc MJPG, lower fps)?")
        if kind != "file":
            if cfg.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queued one
            if cfg.exposure > 0:
                cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2 "manual" mode
                cap.set(cv2.CAP_PROP_EXPOSURE, cfg.exposure)
            else:
                cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 3)  # V4L2 "aperture priority" (auto)
        self._cap = cap
        self._count = 0
        self._next_file_frame = time.monotonic()
        log.info("camera %s: opened %s", cfg.name, cfg.source)

    def disconnect(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
                log.info("camera %s: released %s", self.config.name, self.config.source)

    def read(self) -> Frame:
        with self._lock:
            return self._read()

    def _read(self) -> Frame:
        import cv2

        if self._cap is None:
            raise CameraError(f"camera {self.config.name}: read() before connect()")
        cfg = self.config
        if cfg.is_video_file:
            # Replay at the configured rate: a file would otherwise be read as fast as the CPU allows.
            delay = self._next_file_frame - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, cfg.read_timeout_s))
            self._next_file_frame = max(self._next_file_frame + 1.0 / cfg.fps, time.monotonic())
        ok, bgr = self._cap.read()
        if not ok and cfg.is_video_file and cfg.loop_video:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._cap.read()
        stamp = time.monotonic()
        if not ok or bgr is None:
            raise CameraError(f"camera {cfg.name}: no frame from {cfg.source!r}")
        if bgr.ndim == 2:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if cfg.is_video_file and (rgb.shape[1], rgb.shape[0]) != (cfg.width, cfg.height):
            rgb = cv2.resize(rgb, (cfg.width, cfg.height), interpolation=cv2.INTER_AREA)
        self._count += 1
        return Frame(image=np.ascontiguousarray(rgb), stamp=stamp, index=self._count)


class CameraSupervisor:
    """Connect, read, and on any failure disconnect and reopen with exponential backoff.

    `poll(now)` is called at the capture rate; it returns a Frame, or None while the camera is
    down (then it retries no more often than the backoff allows). Counters and the current state
    are exposed through `status()` for diagnostics.
    """

    def __init__(self, camera: Camera, config: CameraConfig | None = None) -> None:
        self.camera = camera
        self.config = config or camera.config
        self.frames = 0  # frames delivered
        self.drops = 0  # reads that failed or took longer than read_timeout_s
        self.reconnects = 0  # successful reopen after a drop
        self.failed_opens = 0  # failed connect attempts
        self.last_error = ""
        self._retry_at = 0.0
        self._backoff = self.config.reconnect_initial_s
        self._ever_connected = False
        self._last_frame_at: float | None = None

    @property
    def is_up(self) -> bool:
        return self.camera.is_connected

    @property
    def next_retry_at(self) -> float:
        return self._retry_at

    def _fail(self, now: float, message: str) -> None:
        self.last_error = message
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2.0, self.config.reconnect_max_s)

    def poll(self, now: float) -> Frame | None:
        if not self.camera.is_connected:
            if now < self._retry_at:
                return None
            try:
                self.camera.connect()
            except CameraError as exc:
                self.failed_opens += 1
                self._fail(now, str(exc))
                log.warning("%s (retry in %.1f s)", exc, self._retry_at - now)
                return None
            if self._ever_connected:
                self.reconnects += 1
                log.warning("camera %s: reconnected to %s", self.config.name, self.config.source)
            self._ever_connected = True
            self._backoff = self.config.reconnect_initial_s
        started = time.monotonic()
        try:
            frame = self.camera.read()
            if time.monotonic() - started > self.config.read_timeout_s:
                raise CameraError(
                    f"camera {self.config.name}: read took {time.monotonic() - started:.2f} s "
                    f"(> read_timeout_s {self.config.read_timeout_s})")
        except CameraError as exc:
            self.drops += 1
            self.camera.disconnect()
            self._fail(now, str(exc))
            log.warning("camera %s dropped: %s; reopening in %.1f s", self.config.name, exc,
                        self._retry_at - now)
            return None
        self.frames += 1
        self._last_frame_at = now
        return frame

    def close(self) -> None:
        self.camera.disconnect()

    def status(self, now: float) -> DiagStatus:
        values = {
            "source": self.config.source,
            "frames": str(self.frames),
            "drops": str(self.drops),
            "reconnects": str(self.reconnects),
            "failed_opens": str(self.failed_opens),
            "last_error": self.last_error,
        }
        if self._last_frame_at is not None:
            values["seconds_since_frame"] = f"{now - self._last_frame_at:.3f}"
        if not self.camera.is_connected:
            return DiagStatus(DiagLevel.ERROR, f"disconnected, retrying: {self.last_error}", values)
        if self.drops:
            return DiagStatus(DiagLevel.WARN, f"streaming ({self.drops} drops so far)", values)
        return DiagStatus(DiagLevel.OK, "streaming", values)
