"""Episodes as MCAP files of ROS 2 messages: open them in Foxglove, `ros2 bag info` and `ros2 bag play`.

    meld export --run-dir runs/wx --format mcap --out exports/wx_mcap            # one file per trial
    meld export --run-dir runs/wx --format mcap --out exports/wx_mcap --per run  # one file

Per frame t of an episode, at the frame's time (the recorded stamp, see `TimeLine`): each camera's
image (sensor_msgs/Image rgb8, or CompressedImage with `image_format` png/jpeg), the measured joint
state (sensor_msgs/JointState), the policy's action (std_msgs/Float32MultiArray), the success flag
(std_msgs/Bool); from frame 1 on the dense and sparse reward of the step into the frame
(std_msgs/Float32); for frames 0..T-1 the velocity command sent and the velocity applied after the
safety filter (sensor_msgs/JointState, velocity in rad/s); at frame 0 the episode's meta as JSON
(std_msgs/String). Topic names are in `ros2_msgs.Topics`. Header stamps are the recorded stamps
(simulated or ROS time); message log times form one non-decreasing time line per file. Metadata
records: `meld.run` (run, env, rate, cameras, joints) and `meld.episode.<id>` (task, trial, policy).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.algo.replay import Episode
from meld_core.data.ros2_msgs import Topics, header, message_definition, topics_for
from meld_core.data.run_episodes import ExportError, RunEpisodes, TimeLine, task_name

log = logging.getLogger(__name__)

PER = ("trial", "episode", "run")
IMAGE_FORMATS = ("raw", "png", "jpeg")
COMPRESSIONS = ("zstd", "lz4", "none")


@dataclass(frozen=True)
class McapExportConfig:
    """How episodes become MCAP files."""

    per: str = "trial"  # one file per "trial" (its E episodes), per "episode", or one for the whole "run"
    image_format: str = "raw"  # raw: sensor_msgs/Image rgb8 (exact); png / jpeg: CompressedImage
    jpeg_quality: int = 90  # 1..100, for image_format jpeg
    compression: str = "zstd"  # MCAP chunk compression: zstd, lz4 or none
    topics: Topics | None = None  # topic names (None: the robot graph's for the episodes' env)

    def __post_init__(self) -> None:
        for name, allowed in (("per", PER), ("image_format", IMAGE_FORMATS), ("compression", COMPRESSIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"McapExportConfig.{name} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, name)!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"McapExportConfig.jpeg_quality must be in 1..100, got {self.jpeg_quality}")


def export_mcap(run_dir: str | Path, out_dir: str | Path, config: McapExportConfig = McapExportConfig(),
                select: str | None = None) -> list[Path]:
    """Write the run's (selected) episodes as MCAP files into `out_dir`; returns the files written."""
    run = RunEpisodes(run_dir, select)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_name = Path(run_dir).resolve().name
    if config.per == "run":
        groups = [run.ids]
    elif config.per == "episode":
        groups = [[i] for i in run.ids]
    else:
        groups = run.trials()
    written = []
    for ids in groups:
        episodes = [run.load(i) for i in ids] if config.per != "run" else None
        if config.per == "run":
            path = out / f"{run_name}.mcap"
        else:
            first = episodes[0]
            kind = "trial" if config.per == "trial" else "episode"
            number = first.meta.get("trial", first.episode_id) if kind == "trial" else first.episode_id
            path = out / f"{kind}_{int(number):08d}_task_{first.task_index:03d}.mcap"
        written.append(write_mcap(path, episodes if episodes is not None else run, run, config, run_name))
    log.info("wrote %d MCAP file(s) to %s", len(written), out)
    return written


def write_mcap(path: Path, episodes: Sequence[Episode] | RunEpisodes, run: RunEpisodes,
               config: McapExportConfig, run_name: str) -> Path:
    """One MCAP file of `episodes` (a list, or a RunEpisodes read one episode at a time)."""
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer

    compression = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                   "none": CompressionType.NONE}[config.compression]
    tmp = path.with_name(f".{path.name}.tmp")
    timeline = TimeLine()
    first = True
    with open(tmp, "wb") as f:
        writer = Writer(f, compression=compression)
        out = _EpisodeWriter(writer, config)
        for episode in episodes:
            hz = run.control_hz(episode)
            times = timeline.place(episode, hz)
            if first:
                writer.add_metadata("meld.run", {
                    "run": str(episode.meta.get("run", run_name)), "env": str(episode.meta.get("env", "")),
                    "control_hz": f"{hz:g}", "cameras": ",".join(episode.cameras),
                    "joint_names": ",".join(episode.joint_names)})
                first = False
            out.write(episode, times)
        writer.finish()
    tmp.replace(path)
    return path


class _EpisodeWriter:
    """Writes episodes' messages through one mcap_ros2 Writer (schemas registered on first use)."""

    def __init__(self, writer: Any, config: McapExportConfig) -> None:
        self.writer = writer
        self.config = config
        self._schemas: dict[str, Any] = {}

    def _schema(self, datatype: str) -> Any:
        if datatype not in self._schemas:
            self._schemas[datatype] = self.writer.register_msgdef(datatype, message_definition(datatype))
        return self._schemas[datatype]

    def _put(self, topic: str, datatype: str, message: dict, seconds: float, sequence: int) -> None:
        self.writer.write_message(topic, self._schema(datatype), message, log_time=int(round(seconds * 1e9)),
                                  sequence=sequence)

    def write(self, episode: Episode, times: np.ndarray) -> None:
        topics = self.config.topics or topics_for(str(episode.meta.get("env", "")))
        stamps = episode.stamps if episode.stamps is not None else times
        names = list(episode.joint_names)
        cameras = episode.camera_images()
        meta = {**episode.meta, "episode_id": episode.episode_id, "task_index": episode.task_index,
                "task_name": task_name(episode)}
        self.writer.add_metadata(f"meld.episode.{episode.episode_id}",
                                 {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
        last = episode.num_frames - 1
        for t in range(episode.num_frames):
            at, stamp_s, seq = float(times[t]), float(stamps[t]), int(t)
            if t == 0:
                self._put(topics.episode, "std_msgs/msg/String", {"data": json.dumps(meta)}, at, seq)
            for camera, frames in cameras.items():
                self._image(topics, camera, frames[t], stamp_s, at, seq)
            if episode.joint_positions is not None:
                position = episode.joint_positions[t].tolist()
                velocity = [] if episode.joint_velocities is None else episode.joint_velocities[t].tolist()
                self._put(topics.joint_states, "sensor_msgs/msg/JointState",
                          {"header": header(stamp_s), "name": names, "position": position,
                           "velocity": velocity, "effort": []}, at, seq)
            self._put(topics.action, "std_msgs/msg/Float32MultiArray",
                      {"layout": {"dim": [], "data_offset": 0}, "data": episode.actions[t].tolist()}, at, seq)
            self._put(topics.success, "std_msgs/msg/Bool", {"data": bool(episode.successes[t])}, at, seq)
            if t > 0:
                self._put(topics.dense_reward, "std_msgs/msg/Float32",
                          {"data": float(episode.dense_rewards[t])}, at, seq)
                self._put(topics.sparse_reward, "std_msgs/msg/Float32",
                          {"data": float(episode.sparse_rewards[t])}, at, seq)
            if t < last:
                for topic, values in ((topics.velocity_command, episode.commanded_velocities),
                                      (topics.applied_velocity, episode.applied_velocities)):
                    if values is not None:
                        self._put(topic, "sensor_msgs/msg/JointState",
                                  {"header": header(stamp_s), "name": names[:values.shape[1]], "position": [],
                                   "velocity": values[t].tolist(), "effort": []}, at, seq)

    def _image(self, topics: Topics, camera: str, rgb: np.ndarray, stamp_s: float, at: float,
               seq: int) -> None:
        frame_id = f"{camera}_camera_optical_frame"
        if self.config.image_format == "raw":
            h, w = rgb.shape[:2]
            self._put(topics.image.format(camera=camera), "sensor_msgs/msg/Image",
                      {"header": header(stamp_s, frame_id), "height": h, "width": w, "encoding": "rgb8",
                       "is_bigendian": 0, "step": 3 * w, "data": np.ascontiguousarray(rgb).tobytes()},
                      at, seq)
            return
        import cv2

        ext = ".png" if self.config.image_format == "png" else ".jpg"
        params = [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality] if ext == ".jpg" else []
        ok, data = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), params)
        if not ok:
            raise ExportError(f"OpenCV could not encode a {rgb.shape} image as {self.config.image_format}")
        self._put(topics.compressed_image.format(camera=camera), "sensor_msgs/msg/CompressedImage",
                  {"header": header(stamp_s, frame_id), "format": self.config.image_format,
                   "data": data.tobytes()}, at, seq)
