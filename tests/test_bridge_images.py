"""sensor_msgs/Image <-> numpy without cv_bridge (meld_core.bridge.images), and where ROS exists a
frame converted both ways through a real message with the installed packages.

The ROS half would have caught issue 19's first failure: cv_bridge (built against OpenCV 4) and the
pip OpenCV 5 that install.sh brings disagree on type codes (`cv2_to_imgmsg` raised KeyError: 16).
"""

import array

import numpy as np
import pytest

from meld_core.bridge.images import ImageEncodingError, image_array, image_fields


def frame(h=48, w=64):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_round_trip_through_the_message_fields():
    rgb = frame()
    f = image_fields(rgb)
    assert (f["height"], f["width"], f["encoding"], f["step"], f["is_bigendian"]) == (48, 64, "rgb8", 192, 0)
    for data in (f["data"], array.array("B", f["data"]), list(f["data"])):  # bytes, rclpy's array, a list
        assert np.array_equal(image_array(48, 64, "rgb8", 192, data), rgb)


def test_other_encodings_and_row_padding_come_back_as_rgb():
    rgb = frame(4, 5)
    bgr_padded = np.zeros((4, 5 * 3 + 7), np.uint8)
    bgr_padded[:, :15] = rgb[..., ::-1].reshape(4, 15)
    assert np.array_equal(image_array(4, 5, "bgr8", 22, bgr_padded.tobytes()), rgb)
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(image_array(4, 5, "rgba8", 20, rgba.tobytes()), rgb)
    mono = rgb[..., 0].copy()
    grey = np.repeat(mono[..., None], 3, axis=2)
    assert np.array_equal(image_array(4, 5, "mono8", 5, mono.tobytes()), grey)


def test_bad_images_are_refused_with_what_to_do():
    with pytest.raises(ImageEncodingError, match="mjpeg2rgb"):
        image_array(2, 2, "yuv422", 4, bytes(8))
    with pytest.raises(ImageEncodingError, match="needs 12"):
        image_array(2, 2, "rgb8", 6, bytes(11))
    with pytest.raises(ImageEncodingError, match="uint8 RGB"):
        image_fields(np.zeros((2, 2), np.uint8))


def test_a_frame_through_a_real_ros_message_both_ways():
    pytest.importorskip("rclpy")
    Image = pytest.importorskip("sensor_msgs.msg").Image
    from rclpy.serialization import deserialize_message, serialize_message

    rgb = frame(64, 64)
    msg = Image(**image_fields(rgb))
    again = deserialize_message(serialize_message(msg), Image)  # what a subscriber receives
    assert np.array_equal(image_array(again.height, again.width, again.encoding, again.step, again.data), rgb)
