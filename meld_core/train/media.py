"""Videos and plots of evaluation trials (OpenCV mp4v; matplotlib with the Agg backend)."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from meld_core.files import atomic_write_bytes, temp_sibling

logger = logging.getLogger(__name__)


class VideoError(RuntimeError):
    """A video could not be written."""


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write uint8 RGB frames (all the same shape) to an MP4 (codec mp4v: H.264 is not bundled)."""
    import cv2

    if not frames:
        raise VideoError(f"no frames to write to {path}")
    h, w = frames[0].shape[:2]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(max(fps, 1.0)), (w, h))
    if not writer.isOpened():
        raise VideoError(f"OpenCV cannot open an mp4v writer for {path}; is opencv built with video I/O?")
    try:
        for frame in frames:
            if frame.shape[:2] != (h, w):
                raise VideoError(f"frame of shape {frame.shape} in a {h}x{w} video {path}")
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    tmp.replace(path)
    return path


def annotate(frame: np.ndarray, text: str) -> np.ndarray:
    """A copy of `frame` with a line of text in its top-left corner."""
    import cv2

    out = np.ascontiguousarray(frame.copy())
    scale = max(0.3, frame.shape[1] / 500)
    cv2.putText(out, text, (4, int(14 * scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def plot_reward_prediction(path: Path, pred_mean: np.ndarray, pred_std: np.ndarray, dense: np.ndarray,
                           sparse: np.ndarray, episode_length: int, title: str) -> Path:
    """The paper's figure 6: the reward decoder's mean and std over a trial next to the true rewards."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(pred_mean))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(t, pred_mean, color="tab:blue", label="predicted reward (mean)")
    ax.fill_between(t, pred_mean - pred_std, pred_mean + pred_std, color="tab:blue", alpha=0.25,
                    label="predicted reward (±1 std)")
    ax.plot(t, dense, color="tab:green", linestyle="--", label="dense reward")
    ax.plot(t, sparse, color="tab:orange", linestyle=":", label="sparse reward")
    for b in range(episode_length + 1, len(t), episode_length + 1):
        ax.axvline(b - 0.5, color="grey", linewidth=0.8)
    ax.set_xlabel("frame in trial")
    ax.set_ylabel("reward")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def trailing_mean(y: Sequence[float], window: int) -> np.ndarray:
    """Mean of each value and the `window - 1` before it (fewer at the start)."""
    y = np.asarray(y, dtype=float)
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_learning_curves(path: Path, curves: dict[str, tuple[Sequence[float], Sequence[float]]],
                         xlabel: str, ylabel: str, title: str, smooth: int = 1,
                         target: float | None = None) -> Path:
    """One line per name: curves[name] = (x values, y values).

    With `smooth` > 1 the raw points are drawn faint and each line is the trailing mean of `smooth`
    points (noisy evaluations of few trials). `target` draws a dashed horizontal line (e.g. 0.9).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, (x, y) in curves.items():
        if smooth > 1 and len(y):
            raw = ax.plot(list(x), list(y), marker="o", markersize=2, linewidth=0.6, alpha=0.3)[0]
            ax.plot(list(x), trailing_mean(y, smooth), color=raw.get_color(), linewidth=1.8,
                    label=f"{name} (mean of {smooth})")
        else:
            ax.plot(list(x), list(y), marker="o", markersize=3, label=name)
    if target is not None:
        ax.axhline(target, color="0.35", linestyle="--", linewidth=1.0, label=f"target {target:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
