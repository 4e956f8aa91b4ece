"""sensor_msgs/Image <-> numpy without cv_bridge: the byte layout only, no OpenCV.

    fields = image_fields(frame)                      # -> Image(**fields) in a node
    rgb = image_array(h, w, encoding, step, data)     # an Image's fields -> (H, W, 3) uint8 RGB

cv_bridge is compiled against one OpenCV; the OpenCV that pip installs next to it (`cv2` in the
venv) may be another major version whose type codes differ, and `cv2_to_imgmsg` then fails at the
first frame. Our images are plain 8-bit arrays, so the conversion is a reshape: nothing here depends
on the OpenCV (or cv_bridge) version. Outgoing images are rgb8; incoming ones may be rgb8, bgr8,
rgba8, bgra8 or mono8 (what usb_cam, v4l2_camera and the Gazebo bridge publish) and come back as RGB.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np

# encoding -> (channels, channel order as indices into R, G, B[, A]) for 8-bit images
ENCODINGS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}


class ImageEncodingError(ValueError):
    """An image whose encoding or size this conversion does not handle."""


def image_fields(rgb: np.ndarray) -> dict[str, Any]:
    """The fields of a sensor_msgs/Image (rgb8) holding `rgb`, an (H, W, 3) uint8 array."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageEncodingError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    return {
        "height": int(height),
        "width": int(width),
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": int(width * 3),
        "data": np.ascontiguousarray(rgb).tobytes(),
    }


def image_array(height: int, width: int, encoding: str, step: int, data: Any) -> np.ndarray:
    """An (H, W, 3) uint8 RGB copy of an Image's pixels (`data`: bytes, array or list of ints).

    Row padding (`step` > width x channels) is dropped; 8-bit encodings have no byte order."""
    if encoding not in ENCODINGS:
        raise ImageEncodingError(
            f"image encoding {encoding!r} is not supported; publish one of {sorted(ENCODINGS)} "
            "(e.g. usb_cam pixel_format mjpeg2rgb)")
    channels, order = ENCODINGS[encoding]
    row = width * channels
    if height <= 0 or width <= 0 or step < row:
        raise ImageEncodingError(f"image of {width}x{height} {encoding} with step {step} is malformed")
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):  # rclpy gives array.array('B')
        buffer = np.frombuffer(data, dtype=np.uint8)
    else:
        buffer = np.asarray(data, dtype=np.uint8).reshape(-1)
    if buffer.size < step * height:
        raise ImageEncodingError(f"image data has {buffer.size} bytes, {width}x{height} {encoding} with "
                                 f"step {step} needs {step * height}")
    pixels = buffer[: step * height].reshape(height, step)[:, :row].reshape(height, width, channels)
    return np.ascontiguousarray(pixels[..., list(order)])
