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
