"""Plots and helpers of meld_core.train.media."""

import numpy as np
import pytest

from meld_core.train.media import plot_learning_curves, trailing_mean


def test_trailing_mean_averages_each_point_with_the_ones_before_it():
    np.testing.assert_allclose(trailing_mean([1.0, 0.0, 1.0, 1.0], 2), [1.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(trailing_mean([0.2, 0.4, 0.9], 10), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(trailing_mean([0.3, 0.7], 1), [0.3, 0.7])
    assert trailing_mean([], 3).shape == (0,)


@pytest.mark.parametrize("smooth", [1, 3])
def test_learning_curve_plot_is_written(tmp_path, smooth):
    import matplotlib.image

    curves = {"a, episode 2": ([1, 2, 3, 4], [0.0, 1.0, 0.5, 0.5]), "empty": ([], [])}
    path = plot_learning_curves(tmp_path / "sub" / "curve.png", curves, "env steps", "success", "t",
                                smooth=smooth, target=0.9 if smooth > 1 else None)
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # something was drawn


def test_videos_are_h264_that_browsers_play(tmp_path):
    import av

    from meld_core.train.media import write_mp4

    y, x = np.mgrid[0:45, 0:61]
    # smooth pictures with odd sides
    frames = [np.stack([x * 4, y * 5, np.full_like(x, 20 * k)], -1).astype(np.uint8) for k in range(12)]
    path = write_mp4(tmp_path / "v" / "trial.mp4", frames, fps=3.3)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (62, 46)  # padded to even sides (yuv420p)
        rate = float(stream.average_rate)  # read while open: PyAV >= 18.1.1 refuses a closed container's
        decoded = list(container.decode(stream))
    assert len(decoded) == 12 and rate == pytest.approx(3.3)
    first = decoded[0].to_ndarray(format="rgb24")[:45, :61].astype(int)
    assert np.abs(first - frames[0]).mean() < 6  # lossy, but the same picture
    assert [p.name for p in path.parent.iterdir()] == ["trial.mp4"]  # no temporary file left


def test_a_video_that_cannot_be_encoded_raises_a_clear_error(tmp_path, monkeypatch):
    from meld_core.train import media

    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    with pytest.raises(media.VideoError, match="frame of shape"):
        media.write_mp4(tmp_path / "a.mp4", [*frames, np.zeros((8, 8, 3), np.uint8)], fps=5)
    monkeypatch.setattr(media, "VIDEO_CODEC", "no_such_encoder")
    with pytest.raises(media.VideoError, match="could not encode .* as H.264 with PyAV"):
        media.write_mp4(tmp_path / "b.mp4", frames, fps=5)
    assert not list(tmp_path.iterdir())


def test_gif_for_tensorboard_is_animated_and_small():
    from PIL import Image

    from meld_core.train.media import encode_gif

    frames = [np.full((300, 600, 3), v, np.uint8) for v in (0, 120, 250)]
    gif, height, width = encode_gif(frames, fps=4)
    import io

    image = Image.open(io.BytesIO(gif))
    assert gif[:4] == b"GIF8" and image.n_frames == 3 and image.size == (width, height) == (256, 128)
