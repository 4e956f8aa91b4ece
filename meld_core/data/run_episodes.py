"""A run directory's episodes as the exporters read them: selected, in id order, one at a time.

    run = RunEpisodes("runs/wx", select="0-99,120")
    for episode in run: ...

Episodes written before the per-frame records existed (no stamps, joint states or commands, no
camera layout or control rate in their meta) are read as they are; their control rate comes from
the run's config.yaml.
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meld_core.algo.replay import Episode
from meld_core.envs.base import Task

log = logging.getLogger(__name__)

_EPISODE_FILE = re.compile(r"^ep_(\d{8,})\.npz$")
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")


class ExportError(ValueError):
    """The export cannot be done as asked (no such run or episodes, an output folder in the way)."""


@dataclass(frozen=True)
class Selection:
    """Episode ids: the listed ones, and every id from `open_from` on (a range without an end)."""

    ids: frozenset[int] = frozenset()  # single ids and closed ranges
    open_from: int | None = None  # "100-": every id >= 100

    def __contains__(self, episode_id: object) -> bool:
        return episode_id in self.ids or (self.open_from is not None and isinstance(episode_id, int)
                                          and episode_id >= self.open_from)


def parse_selection(text: str | None) -> Selection | None:
    """Episode ids from "3", "0-9", "100-" (open end) and comma-separated lists of those; None: all."""
    if text is None or not text.strip():
        return None
    ids: set[int] = set()
    open_from: list[int] = []
    for part in text.split(","):
        m = _RANGE.match(part)
        if not m:
            raise ExportError(f"cannot read episode selection {part!r} in {text!r}; use ids and ranges "
                              "such as 0-9,15,100-")
        first = int(m.group(1))
        if m.group(2) is None:
            ids.add(first)
        elif m.group(2) == "":
            open_from.append(first)
        else:
            last = int(m.group(2))
            if last < first:
                raise ExportError(f"episode range {part.strip()!r} ends before it starts")
            ids.update(range(first, last + 1))
    return Selection(frozenset(ids), min(open_from) if open_from else None)


def task_name(episode: Episode) -> str:
    """The task as text, e.g. "train[3](port=1, rotation_deg=3.5, translation_mm=-2.25)" (Task.describe)."""
    params = episode.meta.get("task", {})
    return Task(index=episode.task_index, split=episode.meta.get("split", "train"), params=params).describe()


def _npy_shape(f: Any) -> tuple[int, ...]:
    """The array shape in a .npy stream's header."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    header = fmt.read_array_header_1_0(f) if version == (1, 0) else fmt.read_array_header_2_0(f)
    return tuple(header[0])


@dataclass(frozen=True)
class EpisodeHeader:
    """What an episode file holds, without its arrays."""

    episode_id: int
    shapes: dict[str, tuple[int, ...]]  # array name -> shape (only the arrays the file has)
    meta: dict[str, Any]


class RunEpisodes:
    """The selected episodes of a run directory (see the module docstring)."""

    def __init__(self, run_dir: str | Path, select: str | Selection | None = None) -> None:
        self.root = Path(run_dir)
        folder = self.root / "episodes"
        if not folder.is_dir():
            raise ExportError(f"{self.root} has no episodes/ folder; give the run directory of `meld train` "
                              "or of the robot's agent node")
        chosen = parse_selection(select) if isinstance(select, str) or select is None else select
        paths: dict[int, Path] = {}
        for task_dir in sorted(folder.glob("task_*")):
            for path in task_dir.iterdir():
                m = _EPISODE_FILE.match(path.name)
                if m and (chosen is None or int(m.group(1)) in chosen):
                    paths[int(m.group(1))] = path
        if not paths:
            what = "no episodes" if chosen is None else "none of the selected episodes"
            raise ExportError(f"{folder} holds {what}")
        self.ids: list[int] = sorted(paths)
        self._paths = paths
        self._config_hz: float | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Episode]:
        for episode_id in self.ids:
            yield self.load(episode_id)

    def load(self, episode_id: int) -> Episode:
        try:
            return Episode.load(self._paths[episode_id])
        except ValueError as exc:
            raise ExportError(f"{exc}; leave it out with --episodes") from None

    def header(self, episode_id: int) -> EpisodeHeader:
        """An episode file's array shapes and meta, read without reading its arrays."""
        path = self._paths[episode_id]
        shapes: dict[str, tuple[int, ...]] = {}
        try:
            with zipfile.ZipFile(path) as z:
                meta = json.loads(str(np.load(io.BytesIO(z.read("meta_json.npy")), allow_pickle=False)))
                for name in z.namelist():
                    if name.endswith(".npy") and name != "meta_json.npy":
                        with z.open(name) as f:
                            shapes[name[:-4]] = _npy_shape(f)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            problem = f"cannot read episode file {path}: {exc}"
            raise ExportError(f"{problem}; leave it out with --episodes") from None
        return EpisodeHeader(episode_id, shapes, meta)

    def trials(self) -> list[list[int]]:
        """Episode ids grouped by trial (meta "trial", the id of its first episode), in id order; an
        episode without a trial id is a trial of its own."""
        groups: dict[int, list[int]] = {}
        for episode_id in self.ids:
            trial = int(self.header(episode_id).meta.get("trial", episode_id))
            groups.setdefault(trial, []).append(episode_id)
        return [groups[k] for k in sorted(groups)]

    def control_hz(self, episode: Episode) -> float:
        """The episode's control rate (its meta, else the run's env config)."""
        if "control_hz" in episode.meta:
            return float(episode.meta["control_hz"])
        if self._config_hz is None:
            from meld_core.train.rundir import RunDir, RunDirError
            from meld_core.train.setup import load_run_config

            rd = RunDir(self.root)
            if not rd.exists():
                raise ExportError(f"episode {episode.episode_id} does not record its control rate and "
                                  f"{self.root} has no config.yaml to take it from")
            try:
                self._config_hz = float(load_run_config(rd).build_env_config().control_hz)
            except (RunDirError, AttributeError) as exc:
                raise ExportError(f"cannot read the control rate from {rd.config_path}: {exc}") from None
        return self._config_hz


class TimeLine:
    """Places episodes end to end on one non-decreasing time line (seconds), for one export file.

    An episode keeps its recorded stamps where they continue the line (ROS time, or a simulator's
    clock that runs across resets: its reset frame may share the previous episode's last stamp).
    One that starts before the end of the previous one (a simulator restarted by a resumed run) or
    has no stamps (an older file) starts one control period after it; an unstamped episode's frames
    are one period apart.
    """

    def __init__(self) -> None:
        self.end: float | None = None  # time of the last frame placed

    def place(self, episode: Episode, control_hz: float) -> np.ndarray:
        period = 1.0 / control_hz
        if episode.stamps is not None:
            times = episode.stamps.astype(np.float64)
        else:
            times = np.arange(episode.num_frames, dtype=np.float64) * period
        if self.end is not None and (times[0] < self.end or episode.stamps is None):
            times = times - times[0] + self.end + period
        self.end = float(times[-1])
        return times
