"""A picture of an exported MCAP file, laid out like a Foxglove layout: look before you open it.

    meld export --run-dir runs/wx --format mcap --out exports/wx --preview docs/export_preview.png

Read back from the file with the mcap reader (so the picture shows what Foxglove will decode): an Image
panel per camera at one frame (by default the first frame of the last episode where the task is
solved, else that episode's last frame), a Raw Messages panel with the episode's meta, and Plot panels
of the joint positions and of the rewards and success over the file's time line, with the shown
frame marked and episode starts dashed.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from meld_core.data.ros2_msgs import Topics

_BACKGROUND = "#15151a"
_PANEL = "#1f1f27"
_TITLE = "#2b2b35"
_TEXT = "#e6e6ea"
_MUTED = "#9a9aa8"
_COLOURS = ("#4e98e2", "#f5774d", "#61cbff", "#b979ff", "#eac24d", "#6bd68a", "#ff6b9a")


@dataclass
class _Recording:
    images: dict[str, list[tuple[float, np.ndarray]]] = field(default_factory=dict)  # topic -> (t, rgb)
    joints: list[tuple[float, list[float]]] = field(default_factory=list)
    joint_names: list[str] = field(default_factory=list)
    joint_topic: str = ""
    dense: list[tuple[float, float]] = field(default_factory=list)
    sparse: list[tuple[float, float]] = field(default_factory=list)
    success: list[tuple[float, bool]] = field(default_factory=list)
    episodes: list[tuple[float, dict]] = field(default_factory=list)


def _read(path: Path, topics: Topics) -> _Recording:
    import cv2
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    rec = _Recording()
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, msg in reader.iter_decoded_messages():
            t = message.log_time * 1e-9
            if schema.name == "sensor_msgs/msg/Image":
                rgb = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
                rec.images.setdefault(channel.topic, []).append((t, rgb))
            elif schema.name == "sensor_msgs/msg/CompressedImage":
                bgr = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
                rec.images.setdefault(channel.topic, []).append((t, bgr[..., ::-1]))
            elif schema.name == "sensor_msgs/msg/JointState" and list(msg.position):
                rec.joints.append((t, list(msg.position)))
                rec.joint_names, rec.joint_topic = list(msg.name), channel.topic
            elif channel.topic == topics.dense_reward:
                rec.dense.append((t, msg.data))
            elif channel.topic == topics.sparse_reward:
                rec.sparse.append((t, msg.data))
            elif channel.topic == topics.success:
                rec.success.append((t, bool(msg.data)))
            elif channel.topic == topics.episode:
                rec.episodes.append((t, json.loads(msg.data)))
    if not rec.images:
        raise ValueError(f"{path} holds no images to preview")
    return rec


def _chosen_time(rec: _Recording) -> float:
    start = rec.episodes[-1][0] if rec.episodes else 0.0
    solved = [t for t, ok in rec.success if ok and t >= start]
    if solved:
        return solved[0]
    return max(t for t, _ in next(iter(rec.images.values())))


def _panel(ax, title: str) -> None:
    ax.set_facecolor(_PANEL)
    for spine in ax.spines.values():
        spine.set_color(_TITLE)
    ax.set_title(title, loc="left", color=_TEXT, fontsize=9, pad=6, fontfamily="monospace",
                 backgroundcolor=_TITLE)
    ax.tick_params(colors=_MUTED, labelsize=7)


def render_preview(mcap_path: str | Path, out_png: str | Path, topics: Topics | None = None,
                   at: float | None = None) -> Path:
    """Draw the preview of `mcap_path` into `out_png` (PNG); `at`: the time (s) of the frame shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topics = topics or Topics()
    rec = _read(Path(mcap_path), topics)
    t_show = _chosen_time(rec) if at is None else at
    t0 = min(t for frames in rec.images.values() for t, _ in frames)
    cameras = sorted(rec.images, key=lambda topic: ("wrist" in topic, topic))

    fig = plt.figure(figsize=(13, 7.2), dpi=110, facecolor=_BACKGROUND)
    grid = fig.add_gridspec(2, len(cameras) + 1, height_ratios=[1.15, 1], hspace=0.32, wspace=0.12,
                            left=0.04, right=0.985, top=0.93, bottom=0.07)
    fig.suptitle(f"{Path(mcap_path).name}   (t = {t_show - t0:.2f} s)", color=_TEXT, fontsize=11, x=0.04,
                 ha="left", fontfamily="monospace")
    for i, topic in enumerate(cameras):
        frames = rec.images[topic]
        k = int(np.argmin([abs(t - t_show) for t, _ in frames]))
        ax = fig.add_subplot(grid[0, i])
        _panel(ax, f"Image  {topic}")
        ax.imshow(frames[k][1], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[0, len(cameras)])
    _panel(ax, f"Raw Messages  {topics.episode}")
    ax.set_xticks([])
    ax.set_yticks([])
    episode = max((e for e in rec.episodes if e[0] <= t_show), default=(0.0, {}), key=lambda e: e[0])[1]
    keys = ("episode_id", "task_name", "position_in_trial", "trial", "phase", "policy", "run")
    lines = [f"{k}: {json.dumps(episode[k])}" for k in keys if k in episode]
    success = [ok for t, ok in rec.success if t <= t_show]
    lines.append(f"success at frame: {success[-1] if success else '-'}")
    wrapped = [part for line in lines for part in textwrap.wrap(line, 46, subsequent_indent="  ")]
    ax.text(0.03, 0.97, "\n".join(wrapped), transform=ax.transAxes, va="top", ha="left", color=_TEXT,
            fontsize=8, fontfamily="monospace")

    plots = fig.add_gridspec(2, 2, hspace=0.3, wspace=0.12, left=0.05, right=0.985, top=0.44, bottom=0.07)
    ax_j = fig.add_subplot(plots[:, 0])
    _panel(ax_j, f"Plot  {rec.joint_topic or 'joint states'}.position")
    if rec.joints:
        times = np.array([t for t, _ in rec.joints]) - t0
        values = np.array([p for _, p in rec.joints])
        for j in range(values.shape[1]):
            name = rec.joint_names[j] if j < len(rec.joint_names) else f"joint_{j}"
            ax_j.plot(times, values[:, j], color=_COLOURS[j % len(_COLOURS)], lw=1.4, label=name)
        ax_j.legend(loc="upper left", fontsize=7, ncol=min(5, values.shape[1]), facecolor=_PANEL,
                    edgecolor=_TITLE, labelcolor=_TEXT)
        ax_j.set_ylabel("rad", color=_MUTED, fontsize=8)
    ax_r = fig.add_subplot(plots[:, 1])
    _panel(ax_r, f"Plot  {topics.dense_reward}, {topics.sparse_reward}, {topics.success}")
    for series, colour, label in ((rec.dense, _COLOURS[0], "dense reward"), (rec.sparse, _COLOURS[1],
                                                                               "sparse reward")):
        if series:
            ax_r.plot(np.array([t for t, _ in series]) - t0, [v for _, v in series], color=colour, lw=1.4,
                      label=label)
    if rec.success:
        ax_r.step(np.array([t for t, _ in rec.success]) - t0, [float(v) for _, v in rec.success],
                  where="post", color=_COLOURS[5], lw=1.2, label="success")
    ax_r.legend(loc="best", fontsize=7, facecolor=_PANEL, edgecolor=_TITLE, labelcolor=_TEXT)
    for ax in (ax_j, ax_r):
        ax.axvline(t_show - t0, color=_TEXT, lw=0.8)
        for t, _ in rec.episodes[1:]:
            ax.axvline(t - t0, color=_MUTED, lw=0.8, ls="--")
        ax.set_xlabel("time (s)", color=_MUTED, fontsize=8)
        ax.grid(color=_TITLE, lw=0.6)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=_BACKGROUND)
    plt.close(fig)
    return out
