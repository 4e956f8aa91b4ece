"""A run's episodes as a LeRobot dataset (codebase version v3.0, the format of LeRobot >= 0.4).

    meld export --run-dir runs/wx --format lerobot --out exports/wx_lerobot

Layout (as `lerobot.datasets.lerobot_dataset` writes and reads it):

    meta/info.json                 version, fps, counts, path templates, features
    meta/stats.json                per feature: min, max, mean, std, count, q01..q99 (images per channel)
    meta/tasks.parquet             task text (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   per episode: length, tasks, where its rows and video
                                   frames are, its stats (stats/<feature>/<stat>), meld/* ids
    data/chunk-000/file-000.parquet            one row per frame, episodes end to end
    videos/observation.images.<camera>/chunk-000/file-000.mp4   H.264, episodes end to end

Frames: all T+1 frames of an episode. `timestamp` is frame_index / fps (fps = the control rate, 3.3 Hz
for the WidowX: LeRobot decodes video frames at `from_timestamp + timestamp`); `observation.state`
the measured joint positions, `observation.velocity` the measured joint velocities, `action` the
policy's action in [-1, 1] (the boundary action on the last frame, as MELD stores it). `next.*` follow
LeRobot's convention (what follows frame t's action): `next.reward` the dense reward of the step out of
frame t (0 on the last frame, whose action is not executed), `next.sparse_reward` likewise,
`next.success` the task solved after that step (on the last frame: solved at it), `next.done` true on
the last frame. `commanded_velocity` / `applied_velocity`: the joint velocities (rad/s) sent and applied
after frame t, before and after the safety filter. Records that some selected episodes lack (files
written before they were kept) are left out of the whole dataset, with a warning.

Videos are lossy (H.264, yuv420p): a decoded frame differs from the stored image by a few grey levels;
the MCAP export keeps the exact images.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.algo.replay import Episode
from meld_core.data.run_episodes import EpisodeHeader, ExportError, RunEpisodes, task_name

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}  # LeRobot's stats keys
# The frame-index features every LeRobot dataset has (lerobot.datasets.utils.DEFAULT_FEATURES).
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# Optional Episode records -> LeRobot feature (only when every selected episode has the record).
RECORD_FEATURES = {
    "joint_positions": "observation.state",
    "joint_velocities": "observation.velocity",
    "commanded_velocities": "commanded_velocity",
    "applied_velocities": "applied_velocity",
}


@dataclass(frozen=True)
class LeRobotExportConfig:
    """How a run becomes a LeRobot dataset (file size limits: LeRobot's defaults)."""

    crf: int = 18  # H.264 constant rate factor: 0 best, 51 worst (18: hard to tell from the images)
    gop: int = 2  # keyframe every `gop` frames (LeRobot's choice: any frame decodes quickly)
    preset: str = "medium"  # x264 speed/size preset
    chunks_size: int = 1000  # files per chunk folder
    data_files_size_in_mb: int = 100  # a data parquet file is closed when it reaches this size
    video_files_size_in_mb: int = 200  # a video file is closed when it reaches this size
    robot_type: str | None = None  # info.json robot_type (None: the episodes' env name)

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51 or self.gop < 1:
            raise ValueError(f"LeRobotExportConfig needs crf in 0..51 and gop >= 1, got {self.crf}, "
                             f"{self.gop}")
        if min(self.chunks_size, self.data_files_size_in_mb, self.video_files_size_in_mb) < 1:
            raise ValueError("LeRobotExportConfig sizes must be >= 1")


def export_lerobot(run_dir: str | Path, out_dir: str | Path,
                   config: LeRobotExportConfig = LeRobotExportConfig(), select: str | None = None) -> Path:
    """Write the run's (selected) episodes as a LeRobot dataset in `out_dir` (new or empty)."""
    run = RunEpisodes(run_dir, select)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; give a new folder for the dataset")
    headers = [run.header(i) for i in run.ids]
    layout = _Layout.of(headers, run)
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write_dataset(run, layout, out, config)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written dataset that a loader could trust
        raise
    log.info("wrote a LeRobot dataset of %d episodes to %s", len(run), out)
    return out


@dataclass(frozen=True)
class _Layout:
    """What every selected episode has in common: the dataset's features."""

    cameras: tuple[str, ...]
    camera_shape: tuple[int, int, int]  # (h, w, 3) of each camera
    action_dim: int
    records: tuple[str, ...]  # Episode records present in every episode (keys of RECORD_FEATURES)
    joint_names: tuple[str, ...]
    fps: float
    env: str

    @classmethod
    def of(cls, headers: Sequence[EpisodeHeader], run: RunEpisodes) -> _Layout:
        first = headers[0]
        probe = run.load(first.episode_id)
        shapes = {(h.shapes["images"][1:], h.shapes["actions"][1]) for h in headers}
        if len(shapes) > 1:
            raise ExportError(f"the selected episodes have different image or action shapes "
                              f"{sorted(shapes)}; select episodes of one configuration with --episodes")
        rates = {float(h.meta["control_hz"]) for h in headers if "control_hz" in h.meta}
        if len(rates) > 1:
            raise ExportError(f"the selected episodes were recorded at different control rates "
                              f"{sorted(rates)}; select episodes of one rate with --episodes")
        fps = rates.pop() if rates else run.control_hz(probe)
        records = []
        for name in RECORD_FEATURES:
            missing = [h.episode_id for h in headers if name not in h.shapes]
            if not missing:
                records.append(name)
            elif len(missing) < len(headers):
                log.warning("%d of %d selected episodes (e.g. %s) have no %s: the dataset leaves %s out; "
                            "export the others alone (--episodes) to keep it", len(missing), len(headers),
                            missing[:3], name, RECORD_FEATURES[name])
        h, w, _ = first.shapes["images"][1:]
        cameras = probe.cameras
        return cls(cameras=cameras, camera_shape=(h // len(cameras), w, 3),
                   action_dim=first.shapes["actions"][1], records=tuple(records),
                   joint_names=probe.joint_names if records else (), fps=fps,
                   env=str(first.meta.get("env", "")))

    @property
    def video_keys(self) -> list[str]:
        return [f"observation.images.{camera}" for camera in self.cameras]

    def features(self) -> dict[str, dict[str, Any]]:
        """info.json's features (video info is added once the first file is written)."""
        h, w, c = self.camera_shape
        features: dict[str, dict[str, Any]] = {
            key: {"dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"]}
            for key in self.video_keys}
        joints = list(self.joint_names)
        for name in self.records:
            features[RECORD_FEATURES[name]] = {"dtype": "float32", "shape": [len(joints)], "names": joints}
        if len(joints) != self.action_dim:
            joints = [f"action_{i}" for i in range(self.action_dim)]
        features["action"] = {"dtype": "float32", "shape": [self.action_dim], "names": joints}
        for key, dtype in (("next.reward", "float32"), ("next.sparse_reward", "float32"),
                           ("next.success", "bool"), ("next.done", "bool")):
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
        features.update({k: dict(v) for k, v in INDEX_FEATURES.items()})
        return features


def _frame_columns(episode: Episode, layout: _Layout, episode_index: int, first_index: int,
                  task_index: int) -> dict[str, np.ndarray]:
    """The data rows of one episode, as {feature: array with one row per frame}."""
    n = episode.num_frames
    last = np.arange(n) == n - 1

    def after(values: np.ndarray, at_last: Any) -> np.ndarray:  # value of the step out of frame t
        return np.concatenate([values[1:], np.asarray([at_last], dtype=values.dtype)])

    columns: dict[str, np.ndarray] = {
        RECORD_FEATURES[name]: getattr(episode, name).astype(np.float32) for name in layout.records}
    columns.update({
        "action": episode.actions.astype(np.float32),
        "next.reward": after(episode.dense_rewards, 0.0),
        "next.sparse_reward": after(episode.sparse_rewards, 0.0),
        "next.success": after(episode.successes, episode.successes[-1]),
        "next.done": last,
        "timestamp": (np.arange(n) / layout.fps).astype(np.float32),
        "frame_index": np.arange(n, dtype=np.int64),
        "episode_index": np.full(n, episode_index, dtype=np.int64),
        "index": np.arange(first_index, first_index + n, dtype=np.int64),
        "task_index": np.full(n, task_index, dtype=np.int64),
    })
    return columns


def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """LeRobot's per-episode stats of one feature: over frames (vectors: per dimension, shape (d,); scalars:
    shape (1,)) or, for images (N, H, W, 3) uint8, per channel scaled to [0, 1], shape (3, 1, 1)."""
    if image:
        return _image_stats(values)
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    stats = {"min": flat.min(axis=0), "max": flat.max(axis=0), "mean": flat.mean(axis=0),
             "std": flat.std(axis=0)}
    stats.update({key: np.quantile(flat, q, axis=0) for key, q in QUANTILES.items()})
    stats = {key: value.reshape(flat.shape[1]) for key, value in stats.items()}
    stats["count"] = np.array([values.shape[0]], dtype=np.int64)
    return stats


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """`feature_stats` of uint8 frames from per-channel histograms of all pixels: the same numbers as
    over the pixels themselves (np.quantile's linear interpolation included), without sorting them."""
    levels = np.arange(256, dtype=np.float64)
    hist = np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(frames.shape[-1])])
    n = hist.sum(axis=1).astype(np.float64)
    cum = np.cumsum(hist, axis=1)
    mean = hist @ levels / n
    stats = {"min": (hist > 0).argmax(axis=1).astype(np.float64),
             "max": 255.0 - (hist[:, ::-1] > 0).argmax(axis=1), "mean": mean,
             "std": np.sqrt(np.maximum(hist @ levels ** 2 / n - mean ** 2, 0.0))}
    for key, q in QUANTILES.items():
        pos = q * (n - 1)
        lo = np.array([np.searchsorted(c, k, side="right") for c, k in zip(cum, np.floor(pos))])
        hi = np.array([np.searchsorted(c, k, side="right") for c, k in zip(cum, np.ceil(pos))])
        stats[key] = lo + (hi - lo) * (pos - np.floor(pos))
    stats = {key: (value / 255.0).reshape(-1, 1, 1) for key, value in stats.items()}
    stats["count"] = np.array([frames.shape[0]], dtype=np.int64)
    return stats


def aggregate_stats(per_episode: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stats of a whole feature from per-episode stats, as LeRobot aggregates them: min and max of
    the episodes', count-weighted mean, pooled variance, count-weighted mean of each quantile."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    total = counts.sum()
    w = counts.reshape(-1, *([1] * per_episode[0]["mean"].ndim))
    means = np.stack([s["mean"] for s in per_episode])
    mean = (means * w).sum(axis=0) / total
    stds = np.stack([s["std"] for s in per_episode])
    variance = ((stds ** 2 + (means - mean) ** 2) * w).sum(axis=0) / total
    out = {"min": np.min([s["min"] for s in per_episode], axis=0),
           "max": np.max([s["max"] for s in per_episode], axis=0),
           "mean": mean, "std": np.sqrt(variance), "count": np.array([int(total)], dtype=np.int64)}
    for key in QUANTILES:
        out[key] = (np.stack([s[key] for s in per_episode]) * w).sum(axis=0) / total
    return out


class _RollingFiles:
    """chunk/file indices of a sequence of files closed at a size limit (LeRobot's numbering)."""

    def __init__(self, chunks_size: int, limit_mb: int) -> None:
        self.chunks_size = chunks_size
        self.limit_bytes = limit_mb * 1024 * 1024
        self.chunk = self.file = 0
        self.bytes = 0  # written to the current file

    def full(self, more_bytes: int) -> bool:
        return self.bytes > 0 and self.bytes + more_bytes > self.limit_bytes

    def advance(self) -> None:
        self.file += 1
        if self.file == self.chunks_size:
            self.chunk, self.file = self.chunk + 1, 0
        self.bytes = 0


class _VideoWriter:
    """One camera's MP4 files: episodes end to end, frame k of a file at time k / fps."""

    def __init__(self, root: Path, key: str, shape: tuple[int, int, int], fps: float,
                 config: LeRobotExportConfig) -> None:
        self.root, self.key, self.shape, self.config = root, key, shape, config
        self.rate = Fraction(fps).limit_denominator(1000)
        if abs(float(self.rate) - fps) > 1e-9:
            raise ExportError(f"control rate {fps} Hz has no exact frame rate for the videos")
        self.files = _RollingFiles(config.chunks_size, config.video_files_size_in_mb)
        self._container = None
        self._stream = None
        self.frames_in_file = 0

    @property
    def path(self) -> Path:
        return self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.files.chunk,
                                             file_index=self.files.file)

    def _open(self) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w")
        h, w, _ = self.shape
        stream = self._container.add_stream("libx264", rate=self.rate, options={
            "crf": str(self.config.crf), "g": str(self.config.gop), "bf": "0", "preset": self.config.preset})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        self._stream = stream
        self.frames_in_file = 0

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self.files.bytes += packet.size
                self._container.mux(packet)
            self._container.close()
            self._container = None

    def add_episode(self, frames: np.ndarray) -> dict[str, Any]:
        """Encode an episode's frames; returns its videos/<key>/... columns of meta/episodes."""
        import av

        estimate = self.files.bytes / max(self.frames_in_file, 1) * len(frames)
        if self._container is not None and self.files.full(int(estimate)):
            self.close()
            self.files.advance()
        if self._container is None:
            self._open()
        start = self.frames_in_file
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = self.frames_in_file
            video_frame.time_base = 1 / self.rate
            for packet in self._stream.encode(video_frame):
                self.files.bytes += packet.size
                self._container.mux(packet)
            self.frames_in_file += 1
        prefix = f"videos/{self.key}/"
        return {prefix + "chunk_index": self.files.chunk, prefix + "file_index": self.files.file,
                prefix + "from_timestamp": float(start / self.rate),
                prefix + "to_timestamp": float(self.frames_in_file / self.rate)}


def _data_schema(features: dict[str, dict[str, Any]]) -> Any:
    """Arrow schema of the data files: a column per non-video feature (vectors as fixed-size lists,
    as HF datasets stores LeRobot's Sequence features)."""
    import pyarrow as pa

    fields = []
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        scalar = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}[ft["dtype"]]
        fields.append(pa.field(key, scalar if ft["shape"] == [1] else pa.list_(scalar, ft["shape"][0])))
    return pa.schema(fields)


def _arrow_column(values: np.ndarray, arrow_type: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_fixed_size_list(arrow_type):
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)).cast(arrow_type.value_type),
                                                 arrow_type.list_size)
    return pa.array(values.reshape(-1)).cast(arrow_type)


def _write_dataset(run: RunEpisodes, layout: _Layout, out: Path, config: LeRobotExportConfig) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = layout.features()
    schema = _data_schema(features)
    videos = {key: _VideoWriter(out, key, layout.camera_shape, layout.fps, config)
              for key in layout.video_keys}
    data_files = _RollingFiles(config.chunks_size, config.data_files_size_in_mb)
    writer = None
    tasks: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    stats: dict[str, list[dict[str, np.ndarray]]] = {key: [] for key in features}
    total = 0
    try:
        for episode_index, episode in enumerate(run):
            name = task_name(episode)
            task_index = tasks.setdefault(name, len(tasks))
            columns = _frame_columns(episode, layout, episode_index, total, task_index)
            table = pa.table({f.name: _arrow_column(columns[f.name], f.type) for f in schema}, schema=schema)
            if writer is not None and data_files.full(table.nbytes):
                writer.close()
                writer = None
                data_files.advance()
            if writer is None:
                path = out / DATA_PATH.format(chunk_index=data_files.chunk, file_index=data_files.file)
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, schema, compression="snappy")
            writer.write_table(table)
            data_files.bytes += table.nbytes
            row: dict[str, Any] = {
                "episode_index": episode_index, "tasks": [name], "length": episode.num_frames,
                "data/chunk_index": data_files.chunk, "data/file_index": data_files.file,
                "dataset_from_index": total, "dataset_to_index": total + episode.num_frames}
            episode_stats = {key: feature_stats(values) for key, values in columns.items()}
            for camera, frames in episode.camera_images().items():
                key = f"observation.images.{camera}"
                row.update(videos[key].add_episode(frames))
                episode_stats[key] = feature_stats(frames, image=True)
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                        "meld/episode_id": episode.episode_id,
                        "meld/trial": int(episode.meta.get("trial", episode.episode_id)),
                        "meld/position_in_trial": int(episode.meta.get("position_in_trial", 0))})
            for key, feature_stat in episode_stats.items():
                stats[key].append(feature_stat)
                row.update({f"stats/{key}/{s}": v.tolist() for s, v in feature_stat.items()})
            rows.append(row)
            total += episode.num_frames
    finally:
        if writer is not None:
            writer.close()
        for video in videos.values():
            video.close()
    _write_meta(out, layout, features, rows, tasks, stats, total, config)


def _write_meta(out: Path, layout: _Layout, features: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
                tasks: dict[str, int], stats: dict[str, list[dict[str, np.ndarray]]], total: int,
                config: LeRobotExportConfig) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from meld_core.files import atomic_write_text

    path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, compression="snappy")
    task_table = pd.DataFrame({"task_index": list(tasks.values())}, index=list(tasks))
    task_table.to_parquet(out / "meta" / "tasks.parquet")  # as LeRobot writes it: the text is the index
    for key in layout.video_keys:
        first_file = out / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
        features[key]["info"] = video_info(first_file)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": config.robot_type or layout.env or None,
        "total_episodes": len(rows),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": config.chunks_size,
        "data_files_size_in_mb": config.data_files_size_in_mb,
        "video_files_size_in_mb": config.video_files_size_in_mb,
        "fps": int(layout.fps) if float(layout.fps).is_integer() else layout.fps,
        "splits": {"train": f"0:{len(rows)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }
    atomic_write_text(out / "meta" / "info.json", json.dumps(info, indent=4))
    aggregated = {key: {s: v.tolist() for s, v in aggregate_stats(per_episode).items()}
                  for key, per_episode in stats.items()}
    atomic_write_text(out / "meta" / "stats.json", json.dumps(aggregated, indent=4))


def video_info(path: Path) -> dict[str, Any]:
    """A video feature's "info" in info.json, read from its first file (as LeRobot's get_video_info)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.base_rate
        return {"video.height": stream.height, "video.width": stream.width,
                "video.codec": stream.codec_context.name, "video.pix_fmt": stream.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": int(rate) if rate.denominator == 1 else float(rate),
                "video.channels": 3, "has_audio": False}

