"""The run directory: one per training run, everything needed to look at it or resume it.

    runs/<name>/
      config.yaml         the full RunConfig (env config, model, sac, replay, train): enough to resume
      tasks.json          the train and held-out task lists (stage 2 checks its offline run against it)
      lock                pid and command of the process writing the run (an flock; see `RunLock`)
      episodes/           per-task episode files, written atomically as each episode ends (replay.py)
      checkpoints/        ckpt_<global step>.pt (atomic: temp file + rename), last N kept, `latest` pointer;
                          best.pt + best.json: the checkpoint that scored best on train-task validation
      tb/                 TensorBoard scalars
      metrics.csv         the same scalars as CSV (long format: one row per value)
      progress.json       counters, phase and status, rewritten atomically (for monitors, diagnostics, tests)
      eval/               summary.json, success.md, videos/*.mp4, plots/*.png, history.jsonl
      env.json            the environment's spec (image shape, action size, ...) for processes without it
    async mode (TrainConfig.mode; meld_core.train.async_mode) splits the writers: the actor holds
    `lock` and writes episodes/, eval/, config and task files, progress_actor.json, metrics_actor.csv
    and tb/actor/; the learner holds `lock_learner` and writes checkpoints/, progress.json, metrics.csv
    and published/ (weights.pt: its newest networks, atomic; weights.json: their version and counters).

Every write that a crash could leave half-done goes to a temporary file in the same directory that
is fsync'ed and then renamed over the target, so readers see either the old or the new file. One
process writes a run at a time: the trainer, `meld eval` and the agent node hold `lock()` for as
long as they write, and the holder removes the temporary files that killed writers left behind. In
async mode each of the two processes holds the lock of its role and cleans up only its own files.

Checkpoints are zip files (torch.save): every load checks the zip's CRCs first (torch does not) and
unpickles with `weights_only=True`, so a corrupt file is refused with what to do and a hostile one
cannot run code. `latest` names the newest committed checkpoint; when it is missing or unreadable
the newest checkpoint that loads takes its place, and rotation only deletes checkpoints older than
one that was just written and read back.

Over 500 lines on purpose: every file of the run directory and the rules that keep it consistent
(atomic writes, locks per role, checkpoint verification, rotation) in one place.
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
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from meld_core.faults import crash_point
from meld_core.files import atomic_write_bytes, atomic_write_text, remove_stale_temp_files

logger = logging.getLogger(__name__)

_CKPT_RE = re.compile(r"^ckpt_(\d{12})\.pt$")

CHECKPOINT_FORMAT = 1  # the "format" of the checkpoints this code writes; it loads formats up to this one


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (it holds another run, is missing, ...)."""


class RunLockedError(RunDirError):
    """Another process is writing the run directory."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing or cannot be read."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file is damaged (a CRC mismatch, a truncated or garbled archive)."""


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save `state` to `path` atomically, then read it back (`verify_checkpoint`)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    verify_checkpoint(path)


def _step(path: Path) -> int:
    return int(_CKPT_RE.match(path.name).group(1))


def verify_checkpoint(path: Path) -> None:
    """Raise CheckpointError unless `path` is a complete zip whose every member matches its CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # zipfile raises many types for a damaged directory or header
        raise CorruptCheckpointError(f"checkpoint {path} is corrupt ({type(exc).__name__}: {exc})") from None
    if bad is not None:
        raise CorruptCheckpointError(f"checkpoint {path} is corrupt (member {bad} fails its CRC check)")


def load_state(path: Path, map_location: str | Callable[..., Any] = "cpu") -> dict[str, Any]:
    """A meld checkpoint's state: CRCs checked, unpickled as weights only (tensors and plain data)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    verify_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a page; its line naming the object is the useful part
        what = next((ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln), type(exc).__name__)
        raise CheckpointError(
            f"refused {path}: it holds Python objects, not only tensors and plain data, and loading it "
            f"could run code ({what}); use checkpoints written by meld") from None
    except Exception as exc:  # torch raises many types for damaged archives
        raise CorruptCheckpointError(f"checkpoint {path} is corrupt ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "counters" not in state:
        raise CheckpointError(f"{path} is not a meld checkpoint (no counters)")
    fmt = state.get("format", 1)
    if not isinstance(fmt, int) or fmt > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {fmt!r}; this meld reads formats up to "
                              f"{CHECKPOINT_FORMAT}: update meld")
    return state


class RunLock:
    """An exclusive, non-blocking `flock` on a run's lock file, held while a process writes the run.

    The holder's pid and command are written into the file, so a refused process can say who holds
    it. The kernel releases an flock when its holder dies, even by SIGKILL: a stale lock file never
    blocks. `release(remove=True)` deletes the file (for a folder that did not become a run);
    `acquire` re-checks that the file it locked is still the one at `path`, so that is race-free.
    """

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = Path(path)
        self.purpose = purpose  # e.g. "meld train": shown to a process that is refused
        self.previous = ""  # the file's content when acquired: a holder that died without releasing
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        for _ in range(10):  # a retry only follows a concurrent remove; never more than a few
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise RunLockedError(f"{self.path.parent} is in use by {holder}; wait for "
                                     "it to finish or stop it, then try again") from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
        else:
            raise RunDirError(f"could not lock {self.path}: it keeps being removed and re-created")
        try:
            self.previous = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            info = (f"pid {os.getpid()} ({self.purpose} on {socket.gethostname()}, since "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n")
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode("utf-8"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self, remove: bool = False) -> None:
        if self._fd is None:
            return
        try:
            if remove:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            else:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


ROLES = ("actor", "learner")  # the two writers of a run: one process in alternate mode, two in async mode
ROLE_LOCKS = {"actor": "lock", "learner": "lock_learner"}


def _writer(temp_file: Path, root: Path) -> str:
    """The role whose atomic write left `temp_file` (".<name>.<random>.tmp") in the run at `root`: in
    async mode the learner writes checkpoints/ (but the actor best.pt and best.json), published/ and
    progress.json; the actor everything else."""
    parts = temp_file.relative_to(root).parts
    folder, name = (parts[0] if len(parts) > 1 else ""), temp_file.name
    if folder == "published" or (folder == "" and name.startswith(".progress.json.")):
        return "learner"
    if folder == "checkpoints":
        return "actor" if name.startswith((".best.pt.", ".best.json.")) else "learner"
    return "actor"


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
    def lock_path(self) -> Path:
        return self.root / ROLE_LOCKS["actor"]

    @property
    def env_path(self) -> Path:
        return self.root / "env.json"

    @property
    def actor_progress_path(self) -> Path:
        return self.root / "progress_actor.json"

    @property
    def published_dir(self) -> Path:
        return self.root / "published"

    @property
    def published_weights_path(self) -> Path:
        return self.published_dir / "weights.pt"

    @property
    def published_info_path(self) -> Path:
        return self.published_dir / "weights.json"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def require(self) -> RunDir:
        """Raise RunDirError unless this is a meld run directory."""
        if not self.exists():
            raise RunDirError(f"{self.root} is not a meld run directory (no config.yaml)")
        return self

    @contextlib.contextmanager
    def lock(self, purpose: str, roles: tuple[str, ...] = ROLES) -> Iterator[RunLock]:
        """Hold the run's lock (`RunLock`) for the duration; a second writer gets RunLockedError.

        `roles`: both (a process that collects and trains, or evaluates) or one of async mode's
        ("actor", "learner"), whose processes write the run side by side. Once held, the temporary files
        that killed writers of those roles left behind are removed. The lock file is removed again when
        the folder did not become a run (no config.yaml), and so is the folder when this call created it
        and nothing else was written (a failed start leaves nothing behind)."""
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        held: list[RunLock] = []
        try:
            for role in roles:
                held.append(RunLock(self.root / ROLE_LOCKS[role], purpose).acquire())
            self.remove_stale_temp_files(roles)
            yield held[0]
        finally:
            for lock in held:
                lock.release(remove=not self.exists())
            if created and not self.exists():
                with contextlib.suppress(OSError):  # not empty: something else was written there
                    self.root.rmdir()

    def remove_stale_temp_files(self, roles: tuple[str, ...] = ROLES) -> int:
        """Delete what killed atomic writes of `roles` left (`meld_core.files`); only while holding their
        locks (in async mode the other role's process may be writing its own files right now)."""
        removed = remove_stale_temp_files(self.root, recursive=True,
                                          keep=lambda path: _writer(path, self.root) not in roles)
        if removed:
            logger.warning("removed %d temporary file(s) of interrupted writes in %s (e.g. %s)", len(removed),
                           self.root, removed[0].relative_to(self.root))
        return len(removed)

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
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{path} is not valid YAML ({exc}); fix or remove it") from None

    def write_json(self, path: Path, data: Any, *, fsync: bool = True) -> None:
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", fsync=fsync)

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{path} does not exist; is {self.root} a meld run directory?") from None
        except ValueError as exc:  # not JSON, or not UTF-8
            raise RunDirError(f"{path} is not valid JSON ({exc}); fix or remove it") from None

    def write_progress(self, progress: dict[str, Any], path: Path | None = None) -> None:
        """progress.json, or another progress file (`path`: the async actor's)."""
        # No fsync: rewritten often, and only a monitor reads it (a stale file after a crash is fine).
        self.write_json(path or self.progress_path, progress, fsync=False)

    def read_progress(self, path: Path | None = None) -> dict[str, Any] | None:
        """progress.json (or `path`) as written last (None when missing or unreadable: only a report)."""
        try:
            progress = self.read_json(path or self.progress_path)
        except RunDirError:
            return None
        return progress if isinstance(progress, dict) else None

    # -- the learner's published weights (async mode) --------------------------------------------
    def publish_weights(self, state: dict[str, Any], info: dict[str, Any]) -> None:
        """published/weights.pt (verified, atomic), then weights.json (`info`: version and counters)."""
        _save_state(self.published_weights_path, state)
        self.write_json(self.published_info_path, info, fsync=False)

    def published_info(self) -> dict[str, Any] | None:
        """weights.json, or None while nothing was published."""
        if not self.published_info_path.is_file():
            return None
        return self.read_json(self.published_info_path)

    def load_published_weights(self) -> dict[str, Any]:
        """The newest published weights (CRC-checked, weights only, as every checkpoint load)."""
        return load_state(self.published_weights_path)

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
        return sorted(found, key=_step)

    @property
    def latest_pointer(self) -> Path:
        return self.checkpoints_dir / "latest"

    def _pointer_target(self) -> tuple[Path | None, str | None]:
        """(the checkpoint `latest` names, None) or (None, why it cannot be used; None if absent)."""
        pointer = self.latest_pointer
        try:
            raw = pointer.read_bytes()
        except FileNotFoundError:
            return None, None
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None, f"{pointer} is not text"
        if not _CKPT_RE.match(name):
            return None, f"{pointer} holds {name[:40]!r}, not a checkpoint name"
        if not (self.checkpoints_dir / name).is_file():
            return None, f"{pointer} names {name}, which does not exist"
        return self.checkpoints_dir / name, None

    def loadable_checkpoints(self, exclude: Path | None = None) -> Iterator[Path]:
        """Checkpoint files whose CRCs check, newest first (each one is read when reached)."""
        for path in reversed(self.checkpoint_paths()):
            if exclude is not None and path == exclude:
                continue
            try:
                verify_checkpoint(path)
            except CheckpointError as exc:
                logger.warning("%s", exc)
                continue
            yield path

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint named by `checkpoints/latest`; when that is missing, unreadable or names a
        missing file, the newest checkpoint whose CRCs check (None when the run has none yet)."""
        path, broken = self._pointer_target()
        if path is not None:
            return path
        newest = next(self.loadable_checkpoints(), None)
        if newest is not None:
            logger.warning("%s; using the newest good checkpoint, %s", broken or
                           f"{self.latest_pointer} is missing", newest.name)
            return newest
        if broken is not None or self.checkpoint_paths():
            raise CheckpointError(
                f"{broken or 'checkpoints/latest is missing'} and no checkpoint in {self.checkpoints_dir} "
                "is readable; to train again from the stored episodes, move checkpoints/ away and resume")
        return None

    @property
    def best_checkpoint_path(self) -> Path:
        return self.checkpoints_dir / "best.pt"

    @property
    def best_info_path(self) -> Path:
        return self.checkpoints_dir / "best.json"

    def best_info(self) -> dict[str, Any] | None:
        """What `save_best_checkpoint` recorded with the best checkpoint (None when there is none, or
        when best.json is unreadable or has no numeric score: the next validation then replaces it)."""
        if not self.best_info_path.is_file() or not self.best_checkpoint_path.is_file():
            return None
        try:
            info = self.read_json(self.best_info_path)
        except RunDirError as exc:
            logger.warning("%s; the next validation replaces best.pt", exc)
            return None
        score = info.get("score") if isinstance(info, dict) else None
        if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:
            logger.warning("%s has no numeric score; the next validation replaces best.pt",
                           self.best_info_path)
            return None
        return info

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
        """Write `state` atomically and read it back, move `latest` to it, then delete all but the
        newest `keep` checkpoints older than it (newer ones, e.g. a corrupt one a resume skipped,
        are left alone)."""
        path = self.checkpoints_dir / f"ckpt_{global_step:012d}.pt"
        _save_state(path, state)
        crash_point("checkpoint_written", path.name)
        atomic_write_text(self.latest_pointer, path.name + "\n")
        crash_point("latest_written", path.name)
        older = [p for p in self.checkpoint_paths() if _step(p) < global_step]
        for old in older[:max(len(older) - (keep - 1), 0)]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path | None = None,
                        map_location: str | Callable[..., Any] = "cpu") -> dict[str, Any]:
        """Load `path` (default: `latest_checkpoint()`); raise CheckpointError with what to do if it
        fails (for a corrupt one: which older checkpoint still loads)."""
        if path is None:
            path = self.latest_checkpoint()
            if path is None:
                raise CheckpointError(
                    f"{self.root} has no checkpoint yet (checkpoints/latest is missing); "
                    "train longer or resume training with `meld train --run-dir ... --resume`")
        path = Path(path)
        try:
            return load_state(path, map_location)
        except CorruptCheckpointError as exc:
            good = next(self.loadable_checkpoints(exclude=path), None)
            hint = (f"; evaluate an older one with --checkpoint {good}, or delete it and resume from "
                    f"{good.name}" if good is not None else
                    "; delete it (and checkpoints/latest) to train again from the stored episodes")
            raise CheckpointError(f"{exc}{hint}") from None

    def load_resume_checkpoint(self, map_location: str | Callable[..., Any] = "cpu",
                               ) -> tuple[Path, dict[str, Any]] | None:
        """The state a resumed run continues from: `latest`, or when that is corrupt the newest
        checkpoint that loads (logged). None when the run has no checkpoint yet."""
        path = self.latest_checkpoint()
        if path is None:
            return None
        try:
            return path, load_state(path, map_location)
        except CheckpointError as exc:
            first_error = exc
        for other in self.loadable_checkpoints(exclude=path):
            try:
                state = load_state(other, map_location)
            except CheckpointError as exc:
                logger.warning("%s", exc)
                continue
            logger.warning("%s; resuming from the newest good checkpoint, %s", first_error, other.name)
            return other, state
        raise CheckpointError(f"{first_error}, and no other checkpoint in {self.checkpoints_dir} loads; "
                              "to train again from the stored episodes, move checkpoints/ away and resume")
