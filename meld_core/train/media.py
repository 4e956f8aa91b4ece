"""Videos and plots of evaluation trials: H.264 MP4 through PyAV (what browsers, GitHub and common
players play), animated GIFs for TensorBoard, matplotlib figures with the Agg backend."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from meld_core.files import atomic_write_bytes, temp_sibling

logger = logging.getLogger(__name__)

VIDEO_CODEC = "libx264"  # H.264; with yuv420p and even frame sizes every browser plays it


class VideoError(RuntimeError):
    """A video could not be written."""


def _even_rgb(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`frame` as contiguous uint8 RGB, padded (edge pixels) to the even `shape` yuv420p needs."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    h, w = frame.shape[:2]
    if (h, w) != shape:
        frame = np.pad(frame, ((0, shape[0] - h), (0, shape[1] - w), (0, 0)), mode="edge")
    return frame


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write uint8 RGB frames (all the same shape) as an H.264 MP4 (yuv420p, sides padded to even,
    index at the front so it streams); atomic: a temporary file renamed over `path`."""
    if not frames:
        raise VideoError(f"no frames to write to {path}")
    try:
        import av
    except ImportError as exc:
        raise VideoError(f"PyAV is needed to write {path} ({exc}); install it: pip install 'av>=12,<19'"
                         ) from None
    h, w = frames[0].shape[:2]
    shape = (h + h % 2, w + w % 2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream(VIDEO_CODEC, rate=Fraction(max(fps, 1.0)).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = shape[1], shape[0], "yuv420p"
            for frame in frames:
                if frame.shape[:2] != (h, w):
                    raise VideoError(f"frame of shape {frame.shape} in a {h}x{w} video {path}")
                image = av.VideoFrame.from_ndarray(_even_rgb(frame, shape), format="rgb24")
                container.mux(stream.encode(image))
            container.mux(stream.encode(None))
    except VideoError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # FFmpeg errors (no libx264 in this PyAV build, disk full, ...)
        tmp.unlink(missing_ok=True)
        raise VideoError(f"could not encode {path} as H.264 with PyAV {av.__version__} "
                         f"({type(exc).__name__}: {exc}); PyAV's wheels include {VIDEO_CODEC}, a build from "
                         "source needs an FFmpeg that has it") from None
    tmp.replace(path)
    return path


def encode_gif(frames: Sequence[np.ndarray], fps: float, max_side: int = 256) -> tuple[bytes, int, int]:
    """Animated GIF of uint8 RGB frames, shrunk so that no side exceeds `max_side`, and its height and
    width (TensorBoard's image dashboard plays GIFs; its own video summaries need moviepy)."""
    from PIL import Image

    if not frames:
        raise VideoError("no frames for a GIF")
    h, w = frames[0].shape[:2]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    images = [Image.fromarray(np.ascontiguousarray(f, dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)
              for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=round(1000 / max(fps, 1e-3)))
    return buf.getvalue(), size[1], size[0]


def read_rgb(path: Path) -> np.ndarray:
    """A PNG (or any image PIL reads) as an (H, W, 3) uint8 array."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


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
