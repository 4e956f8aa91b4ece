"""The run directory: one per training run, everything needed to look at it or resume it.

    runs/<name>/
      config.yaml         the full RunConfig (env config, model, sac, replay, train): enough to resume
      tasks.json          the train and held-out task lists (stage 2 checks its offline run against it)
      episodes/           per-task episode files, written atomically as each episode ends (replay.py)
      checkpoints/        ckpt_<global step>.pt (atomic: temp file + rename), last N kept, `latest` pointer;
                          best.pt + best.json: the checkpoint that scored best on train-task validation
      tb/                 TensorBoard scalars
      metrics.csv         the same scalars as CSV (long format: one row per value)
      progress.json       counters and phase, rewritten atomically (for monitors, diagnostics and tests)
      eval/               summary.json, success.md, videos/*.mp4, plots/*.png, history.jsonl
      env.json            the environment's spec (image shape, action size, ...) for processes without it
    async mode (TrainConfig.mode) adds:
      policy/             policy.pt (the learner's newest weights, atomic) + policy.json (its counters)
      progress_actor.json, metrics_actor.csv, tb/actor/   the actor's own progress and scalars
      .lock_actor, .lock_learner   OS locks: one process per role writes a run at a time

Every write that a crash could leave half-done goes to a temporary file in the same directory that
is fsync'ed and then renamed over the target, so readers see either the old or the new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from meld_core.files import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

_CKPT_RE = re.compile(r"^ckpt_(\d{12})\.pt$")


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save `state` to `path` atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (it holds another run, is missing, ...)."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing or cannot be read."""


class RunLockedError(RunDirError):
    """Another process already writes this run in the same role."""


LOCK_PREFIX = ".lock_"


class RunDir:
    """Paths and atomic file operations of one run directory (creates nothing until asked)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def tasks_path(self) -> Path:
        return self.root / "tasks.json"

    @property
    def env_path(self) -> Path:
        return self.root / "env.json"

    @property
    def episodes_dir(self) -> Path:
        return self.root / "episodes"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tb_dir(self) -> Path:
        return self.root / "tb"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def progress_path(self) -> Path:
        return self.root / "progress.json"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def policy_path(self) -> Path:
        return self.root / "policy" / "policy.pt"

    @property
    def policy_info_path(self) -> Path:
        return self.root / "policy" / "policy.json"

    def exists(self) -> bool:
        return self.config_path.is_file()

    @contextlib.contextmanager
    def lock(self, *roles: str) -> Iterator[None]:
        """Hold the OS lock of each role ("actor", "learner") for the duration; raise RunLockedError
        when another process holds one. The kernel releases a lock when its holder dies (kill -9)."""
        self.root.mkdir(parents=True, exist_ok=True)
        held = []
        try:
            for role in roles:
                path = self.root / f"{LOCK_PREFIX}{role}"
                f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (closed below)
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.seek(0)
                    holder = f.read().strip() or "unknown process"
                    f.close()
                    raise RunLockedError(f"{self.root} is being written by another {role} ({holder}); stop "
                                         "that process first, or choose another --run-dir") from None
                f.seek(0)
                f.truncate()
                f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
                f.flush()
                held.append(f)
            yield
        finally:
            for f in held:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()

    # -- the published policy (async mode) -----------------------------------------------------
    def publish_policy(self, state: dict[str, Any], info: dict[str, Any]) -> None:
        """policy.pt (weights, atomic), then policy.json (`info`: its version and counters, atomic)."""
        _save_state(self.policy_path, state)
        self.write_json(self.policy_info_path, info, fsync=False)

    def policy_info(self) -> dict[str, Any] | None:
        """policy.json, or None while nothing was published."""
        if not self.policy_info_path.is_file():
            return None
        return self.read_json(self.policy_info_path)

    def load_policy(self) -> dict[str, Any]:
        import torch

        try:
            return torch.load(self.policy_path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch raises many types for truncated/corrupt files
            raise CheckpointError(f"published policy {self.policy_path} cannot be read "
                                  f"({type(exc).__name__}: {exc}); the learner rewrites it at its next "
                                  "publication") from None

    def make_dirs(self) -> None:
        for d in (self.root, self.episodes_dir, self.checkpoints_dir, self.tb_dir, self.eval_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- small JSON/YAML files -----------------------------------------------------------------
    def write_yaml(self, path: Path, data: Any) -> None:
        import yaml

        atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))

    def read_yaml(self, path: Path) -> Any:
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                return yaml.safe_load(f)
        except FileNotFoundError:
            raise RunDirError(f"{path} does not exist; is {self.root} a meld run directory?") from None
        except yaml.YAMLError as exc:
            raise RunDirError(f"{path} is not valid YAML ({exc}); fix or remove it") from None

    def write_json(self, path: Path, data: Any, *, fsync: bool = True) -> None:
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", fsync=fsync)

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{path} does not exist; is {self.root} a meld run directory?") from None
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is not valid JSON ({exc}); fix or remove it") from None

    def write_progress(self, progress: dict[str, Any]) -> None:
        # No fsync: rewritten often, and only a monitor reads it (a stale file after a crash is fine).
        self.write_json(self.progress_path, progress, fsync=False)

    # -- evaluation history (one JSON line per periodic evaluation) ----------------------------
    @property
    def eval_history_path(self) -> Path:
        return self.eval_dir / "history.jsonl"

    def append_eval_record(self, record: dict[str, Any]) -> None:
        """Append one line; a line cut short by a crash is closed first so the new one stays whole."""
        path = self.eval_history_path
        with open(path, "ab") as f:
            if f.tell() > 0:
                with open(path, "rb") as tail:
                    tail.seek(-1, os.SEEK_END)
                    if tail.read(1) != b"\n":
                        f.write(b"\n")
            f.write((json.dumps(record) + "\n").encode("utf-8"))

    def eval_history(self) -> list[dict[str, Any]]:
        """The periodic evaluations in order; lines a crash cut short are skipped (logged)."""
        if not self.eval_history_path.is_file():
            return []
        records, broken = [], 0
        for line in self.eval_history_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                broken += 1
        if broken:
            logger.warning("%s: skipped %d unreadable line(s) (cut short by a crash?)",
                           self.eval_history_path, broken)
        return records

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_paths(self) -> list[Path]:
        """Complete checkpoint files, oldest first."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [p for p in self.checkpoints_dir.iterdir() if _CKPT_RE.match(p.name)]
        return sorted(found, key=lambda p: int(_CKPT_RE.match(p.name).group(1)))

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint named by `checkpoints/latest` (None when the run has none yet)."""
        pointer = self.checkpoints_dir / "latest"
        if not pointer.is_file():
            return None
        name = pointer.read_text(encoding="utf-8").strip()
        path = self.checkpoints_dir / name
        if not _CKPT_RE.match(name) or not path.is_file():
            raise CheckpointError(
                f"{pointer} names {name!r}, which does not exist; point it at one of "
                f"{[p.name for p in self.checkpoint_paths()] or 'no checkpoints (delete the pointer)'}")
        return path

    @property
    def best_checkpoint_path(self) -> Path:
        return self.checkpoints_dir / "best.pt"

    @property
    def best_info_path(self) -> Path:
        return self.checkpoints_dir / "best.json"

    def best_info(self) -> dict[str, Any] | None:
        """What `save_best_checkpoint` recorded with the best checkpoint (None when there is none)."""
        if not self.best_info_path.is_file() or not self.best_checkpoint_path.is_file():
            return None
        return self.read_json(self.best_info_path)

    def save_best_checkpoint(self, state: dict[str, Any], info: dict[str, Any]) -> Path:
        """Write `state` atomically as checkpoints/best.pt, then `info` (score, counters) as best.json.

        Rotation never deletes it. A crash between the two writes leaves the new best.pt with the old
        best.json, i.e. a score at most as high as the stored checkpoint's: the next better validation
        still replaces it.
        """
        _save_state(self.best_checkpoint_path, state)
        self.write_json(self.best_info_path, info)
        return self.best_checkpoint_path

    def resolve_checkpoint(self, name: str | os.PathLike[str] | None) -> Path | None:
        """A checkpoint argument as users give it: None (latest), "best", "latest", or a file path."""
        if name is None or str(name) == "latest":
            return None
        if str(name) == "best":
            if not self.best_checkpoint_path.is_file():
                raise CheckpointError(
                    f"{self.root} has no best checkpoint (checkpoints/best.pt): the run validates on "
                    "train tasks only when its TrainConfig.validation_trials > 0, from its first "
                    "evaluation on; use the latest checkpoint instead")
            return self.best_checkpoint_path
        return Path(name)

    def save_checkpoint(self, state: dict[str, Any], global_step: int, keep: int) -> Path:
        """Write `state` (torch.save-able) atomically, move `latest` to it, keep the newest `keep`."""
        path = self.checkpoints_dir / f"ckpt_{global_step:012d}.pt"
        _save_state(path, state)
        atomic_write_text(self.checkpoints_dir / "latest", path.name + "\n")
        for old in self.checkpoint_paths()[:-keep]:
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path | None = None,
                        map_location: str | Callable[..., Any] = "cpu") -> dict[str, Any]:
        """Load `path` (default: `latest`); raise CheckpointError with what to do if it fails."""
        import torch

        if path is None:
            path = self.latest_checkpoint()
            if path is None:
                raise CheckpointError(
                    f"{self.root} has no checkpoint yet (checkpoints/latest is missing); "
                    "train longer or resume training with `meld train --run-dir ... --resume`")
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as exc:  # torch raises many types for truncated/corrupt files
            others = [p.name for p in self.checkpoint_paths() if p != path]
            hint = (f"; delete it and point checkpoints/latest at an older one ({others[-1]})" if others
                    else "; delete it (and checkpoints/latest) to restart from the stored episodes")
            raise CheckpointError(f"checkpoint {path} is corrupt ({type(exc).__name__}: {exc})"
                                  f"{hint}") from None
        if not isinstance(state, dict) or "counters" not in state:
            raise CheckpointError(f"{path} is not a meld checkpoint (no counters)")
        return state
