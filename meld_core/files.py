"""Crash-safe file writes: a crash (or a kill) leaves either the old file or the new one, never half.

Every writer in meld_core that a crash could leave half-done (run-directory files, checkpoints,
episode files, evaluation artefacts) goes through `atomic_write_bytes`: a temporary file
`.<name>.<random>.tmp` in the same folder, fsync'ed, then renamed over the target, then the folder
fsync'ed. A kill between the two leaves only the temporary file, which `remove_stale_temp_files`
deletes (run by whoever holds a run directory's lock, when it starts). An `OSError` from a write
carries the target's path; `explain_os_error` turns it into one line that says what to fix.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from meld_core.faults import crash_point

logger = logging.getLogger(__name__)

# `.<name>.<random>.tmp` (atomic_write_bytes) and `.<stem>.tmp.<suffix>` (temp_sibling).
_TEMP_RE = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one.

    An OSError (disk full, read-only file system, no permission) names `path`, not the temporary
    file (whose name would only confuse)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        exc.filename = str(path)  # the temporary file's name would only confuse
        raise
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; run files are meant to be shared and read by tools
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        crash_point("before_rename", path.name)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            exc.filename = str(path)
        raise
    if fsync:
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_sibling(path: Path) -> Path:
    """A temporary name beside `path` that keeps its suffix, for writers that choose the format from
    the name (video writers); rename it over `path` when complete."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def is_temp_file(path: Path) -> bool:
    """Whether `path` is a temporary file of `atomic_write_bytes` or a `temp_sibling`."""
    return bool(_TEMP_RE.match(Path(path).name))


def remove_stale_temp_files(directory: Path, recursive: bool = False,
                            keep: Callable[[Path], bool] | None = None) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in `directory` (and below, with
    `recursive`), except those `keep` selects. Only call this while no other process writes them
    (hold the run's lock)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = directory.rglob(".*") if recursive else directory.glob(".*")
    removed = []
    for path in found:
        if path.is_file() and is_temp_file(path) and not (keep is not None and keep(path)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def explain_os_error(exc: OSError) -> str:
    """One line for a user: which file, what went wrong, what to free or fix."""
    where = f" {exc.filename}" if exc.filename else ""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"cannot write{where}: {what}; free space on that disk (old runs, checkpoints/, "
                "eval/videos/) and run again (a training run continues with --resume)")
    if exc.errno == errno.EROFS:
        return (f"cannot write{where}: the file system is read-only; remount it read-write or copy the run "
                "to a writable disk")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"cannot write{where}: permission denied; fix the owner or permissions of that folder, or "
                "use a run directory you can write")
    return f"cannot access{where}: {what} (errno {exc.errno})"
