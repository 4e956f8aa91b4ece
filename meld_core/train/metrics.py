"""Scalars to TensorBoard and to a CSV file, side by side; images, videos, text and hparams to
TensorBoard.

The x-axis of every TensorBoard curve is env steps (unless a caller gives another step, as model
pre-training does with its own steps). The CSV is in long format (one row per value: wall time,
global step, env steps, tag, value), so that new tags can appear mid-run and a resumed run simply
appends. Both writers are flushed after every call: a killed run loses nothing that was logged.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CSV_HEADER = ("wall_time", "global_step", "env_steps", "tag", "value")


class MetricsLogger:
    """`log(prefix, values, global_step, env_steps)` -> TensorBoard `prefix/name` and a CSV row each;
    `image`, `video`, `text` and `hparams` -> TensorBoard only (no-ops without it)."""

    def __init__(self, csv_path: Path, tb_dir: Path | None = None) -> None:
        self.csv_path = Path(csv_path)
        self.tb_dir = Path(tb_dir) if tb_dir is not None else None
        self._csv_file = None
        self._csv = None
        self._tb = None

    def open(self) -> MetricsLogger:
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        self._csv_file = open(self.csv_path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._csv = csv.writer(self._csv_file)
        if new:
            self._csv.writerow(CSV_HEADER)
            self._csv_file.flush()
        if self.tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.tb_dir), flush_secs=10)
            except ImportError as exc:  # tensorboard is an install requirement; degrade, but say so
                logger.warning("TensorBoard logging disabled (%s); install tensorboard", exc)
        return self

    def __enter__(self) -> MetricsLogger:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, prefix: str, values: Mapping[str, float], global_step: int, env_steps: int, *,
            step: int | None = None) -> None:
        """CSV rows at (global step, env steps); TensorBoard points at `step` (default: env steps)."""
        if self._csv is None:
            raise RuntimeError("MetricsLogger.log() before open()")
        now = time.time()
        for name, value in values.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            tag = f"{prefix}/{name}" if prefix else name
            text = repr(v) if math.isfinite(v) else str(v)
            self._csv.writerow((f"{now:.3f}", global_step, env_steps, tag, text))
            if self._tb is not None:
                self._tb.add_scalar(tag, v, global_step=env_steps if step is None else step, walltime=now)
        self._csv_file.flush()
        if self._tb is not None:
            self._tb.flush()

    def image(self, tag: str, rgb: np.ndarray, step: int) -> None:
        """An (H, W, 3) uint8 image."""
        if self._tb is not None:
            self._tb.add_image(tag, np.ascontiguousarray(rgb), global_step=step, dataformats="HWC")
            self._tb.flush()

    def video(self, tag: str, frames: Sequence[np.ndarray], fps: float, step: int) -> None:
        """Frames as an animated GIF in TensorBoard's image dashboard (its video summaries need moviepy)."""
        if self._tb is None:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        from meld_core.train.media import encode_gif

        gif, height, width = encode_gif(frames, fps)
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
        # SummaryWriter has no public call for a ready-made summary; add_hparams uses the same writer
        self._tb._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        self._tb.flush()

    def text(self, tag: str, markdown: str, step: int) -> None:
        if self._tb is not None:
            self._tb.add_text(tag, markdown, global_step=step)
            self._tb.flush()

    def hparams(self, hparams: Mapping[str, Any], metric_tags: Sequence[str]) -> None:
        """The run's settings for TensorBoard's HParams dashboard, next to the scalars `metric_tags`."""
        if self._tb is None:
            return
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        plain = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()}
        writer = self._tb._get_file_writer()
        for summary in hparams_summary(plain, {tag: 0.0 for tag in metric_tags}):
            writer.add_summary(summary)
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
            self._csv = None


def read_metrics_csv(path: Path) -> list[dict[str, float | str]]:
    """Rows of a metrics CSV as dicts (values as float); for plots, tests and benchmarks."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                rows.append({"wall_time": float(row["wall_time"]), "global_step": int(row["global_step"]),
                             "env_steps": int(row["env_steps"]), "tag": row["tag"],
                             "value": float(row["value"])})
            except (KeyError, TypeError, ValueError):
                continue  # a row cut by a kill
    return rows
