"""A deterministic camera for tests and demos: numbered frames, scripted drops and unplugs."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from meld_core.hardware.camera import CameraConfig, CameraError, Frame


class FakeCamera:
    """Implements `meld_core.hardware.camera.Camera`.

    Frame k is a solid colour whose red channel is k % 256 (so tests can tell frames apart).
    `unplug()` makes reads and connects fail until `replug()`; `fail_reads(n)` fails the next n
    reads only. `clock` supplies frame stamps (time.monotonic by default).
    """

    def __init__(self, config: CameraConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or CameraConfig(source="fake")
        self.clock = clock
        self.connects = 0
        self._connected = False
        self._plugged = True
        self._failing_reads = 0
        self._count = 0

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        if not self._plugged:
            raise CameraError(f"camera {self.config.name}: fake device {self.config.source} is unplugged")
        self._connected = True
        self.connects += 1

    def disconnect(self) -> None:
        self._connected = False

    def unplug(self) -> None:
        self._plugged = False

    def replug(self) -> None:
        self._plugged = True

    def fail_reads(self, n: int) -> None:
        self._failing_reads = n

    def read(self) -> Frame:
        if not self._connected:
            raise CameraError(f"camera {self.config.name}: read() before connect()")
        if not self._plugged or self._failing_reads > 0:
            self._failing_reads = max(0, self._failing_reads - 1)
            raise CameraError(f"camera {self.config.name}: no frame (fake drop)")
        self._count += 1
        image = np.zeros((self.config.height, self.config.width, 3), np.uint8)
        image[..., 0] = self._count % 256
        image[..., 1] = 80
        image[..., 2] = 160
        return Frame(image=image, stamp=self.clock(), index=self._count)
