"""A run directory under faults: a second writer, corrupt and hostile files, full or read-only disks."""

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from meld_core import cli
from meld_core.config.presets import preset_config
from meld_core.files import atomic_write_bytes
from meld_core.train.hooks import TrainerHooks
from meld_core.train.rundir import CheckpointError, RunDir, RunLockedError
from meld_core.train.trainer import run_training

ROOT = Path(__file__).resolve().parents[1]


def tiny(**train):
    cfg = preset_config("point_nav", "smoke")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train)) if train else cfg


class Cli:
    """`meld ARGS` in this process; `.err` is the one `meld: error:` line (None if there is none)."""

    def __init__(self, capsys, *args):
        self.returncode = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        self.stdout, self.stderr = captured.out, captured.err
        errors = [ln for ln in self.stderr.splitlines() if ln.startswith("meld: error:")]
        assert len(errors) <= 1, self.stderr
        self.err = errors[0] if errors else None


def meld_process(*args, crash_at=None, **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MELD_CRASH_AT", None)
    if crash_at:
        env["MELD_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "-m", "meld_core.cli", *map(str, args)], env=env, cwd=ROOT,
                            **popen)


def episode_ids(run):
    return sorted(int(p.stem.split("_")[1]) for p in (run / "episodes").glob("task_*/ep_*.npz"))


def progress(run):
    return json.loads((run / "progress.json").read_text())


def garble_middle(path, count=2000):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + count] = bytes((b + 1) % 256 for b in data[mid:mid + count])
    path.write_bytes(bytes(data))


class CountSteps(TrainerHooks):
    def __init__(self):
        self.steps = {"model": 0, "ac": 0}

    def on_gradient_step(self, trainer, kind, metrics):
        self.steps[kind] += 1


def failing_os_open(monkeypatch, under, code, names="*"):
    """os.open (what mkstemp and the run lock use) fails with `code` for files below `under`."""
    import fnmatch

    real = os.open
    under = str(Path(under).resolve())

    def fake(path, flags, *args, **kwargs):
        p = os.path.abspath(os.fsdecode(path))
        if p.startswith(under + os.sep) and fnmatch.fnmatch(os.path.basename(p), names) and flags & (
                os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), p)
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake)


# -- 1. one writer at a time ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_blocks_nothing(tmp_path, capsys):
    # Before: two `meld train --resume` on one directory both ran (duplicate episode ids, interleaved files).
    run = tmp_path / "run"
    holder = meld_process("train", "--env", "point_nav", "--preset", "smoke", "--iterations", 100_000,
                          "--run-dir", run, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / "progress.json").is_file() or progress(run).get("status") != "running":
            assert holder.poll() is None, holder.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the first trainer did not start within 120 s"
            time.sleep(0.05)
        second = Cli(capsys, "train", "--run-dir", run, "--resume", "--iterations", 1)
        assert second.returncode == 2, second.stderr
        assert f"is in use by pid {holder.pid} (training" in second.err
        evaluation = Cli(capsys, "eval", "--run-dir", run, "--rounds", 1, "--videos", 0)
        assert evaluation.returncode == 2 and f"pid {holder.pid}" in evaluation.err
        assert holder.poll() is None  # the holder is untouched
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.stderr.close()
    ids = episode_ids(run)
    # The kernel released the dead holder's flock: the lock file (still naming it) blocks nothing.
    assert f"pid {holder.pid}" in (run / "lock").read_text()
    resumed = Cli(capsys, "train", "--run-dir", run, "--resume", "--iterations", 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert episode_ids(run)[: len(ids)] == ids and (run / "lock").read_text() == ""


def test_the_lock_is_per_directory_and_released_after_use(tmp_path):
    a, b = RunDir(tmp_path / "a"), RunDir(tmp_path / "b")
    with a.lock("training"), b.lock("evaluation"), pytest.raises(
            RunLockedError, match=f"{tmp_path / 'a'} is in use by pid {os.getpid()} "), a.lock("evaluation"):
        pass
    with a.lock("training"):
        pass
    # neither folder became a run: the lock created them, and removes them (and its file) again
    assert not a.root.exists() and not b.root.exists()
    b.root.mkdir()  # a folder that was there before the lock stays, without a lock file
    with b.lock("training"):
        pass
    assert list(b.root.iterdir()) == []


# -- 3. `latest` and rotation ---------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["missing", "garbage bytes", "dangling name"])
def test_a_broken_latest_resumes_from_the_newest_good_checkpoint(tmp_path, damage, caplog):
    # Before: a missing `latest` started a fresh agent from warm-up (and rotation then deleted the
    # trained checkpoints); garbage bytes were a UnicodeDecodeError traceback.
    cfg = tiny(num_iterations=4, checkpoint_interval=1, eval_interval=100)
    run = tmp_path / "run"
    first = run_training(tiny(num_iterations=2, checkpoint_interval=1, eval_interval=100), run,
                         progress_bars=False).counters
    pointer = run / "checkpoints" / "latest"
    newest = pointer.read_text().strip()
    if damage == "missing":
        pointer.unlink()
    elif damage == "garbage bytes":
        pointer.write_bytes(b"\xff\xfe\x00garbage\x9c")
    else:
        pointer.write_text("ckpt_999999999999.pt\n")
    counted = CountSteps()
    resumed = run_training(cfg, run, resume=True, hooks=[counted], progress_bars=False)
    assert f"using the newest good checkpoint, {newest}" in caplog.text
    whole = run_training(cfg, tmp_path / "whole", progress_bars=False).counters
    # no pre-training again, only the two new iterations: the trained weights were used
    assert counted.steps == {"model": whole.model_steps - first.model_steps,
                             "ac": whole.ac_steps - first.ac_steps}
    assert (resumed.counters.model_steps, resumed.counters.ac_steps) == (whole.model_steps, whole.ac_steps)


def test_rotation_keeps_the_old_checkpoints_when_the_new_one_does_not_read_back(tmp_path, monkeypatch):
    # Before: the new checkpoint was never read back; rotation deleted the older, good ones.
    rd = RunDir(tmp_path)
    rd.make_dirs()
    for step in (10, 20):
        rd.save_checkpoint({"counters": {"step": step}, "w": torch.ones(100)}, step, keep=2)

    def garbling_write(path, data, **kwargs):  # a disk that flips bits in what it stores
        data = bytearray(data)
        data[len(data) // 2] ^= 0xFF
        atomic_write_bytes(path, bytes(data), **kwargs)

    monkeypatch.setattr("meld_core.train.rundir.atomic_write_bytes", garbling_write)
    with pytest.raises(CheckpointError, match="ckpt_000000000030.pt is corrupt"):
        rd.save_checkpoint({"counters": {"step": 30}, "w": torch.ones(100)}, 30, keep=2)
    assert [p.name for p in rd.checkpoint_paths()] == ["ckpt_000000000010.pt", "ckpt_000000000020.pt",
                                                     "ckpt_000000000030.pt"]
    assert rd.latest_checkpoint().name == "ckpt_000000000020.pt"


def test_rotation_never_deletes_checkpoints_newer_than_the_one_written(tmp_path):
    rd = RunDir(tmp_path)
    rd.make_dirs()
    for step in (10, 20, 30, 40):
        rd.save_checkpoint({"counters": {}}, step, keep=2)
    assert [p.name for p in rd.checkpoint_paths()] == ["ckpt_000000000030.pt", "ckpt_000000000040.pt"]
    rd.save_checkpoint({"counters": {}}, 35, keep=2)  # a resume from an older checkpoint
    assert [p.name for p in rd.checkpoint_paths()] == ["ckpt_000000000030.pt", "ckpt_000000000035.pt",
                                                     "ckpt_000000000040.pt"]


# -- 4. corrupt checkpoints -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished smoke run with two checkpoints and best.pt; tests copy it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    run_training(tiny(num_iterations=4, eval_interval=2), run, progress_bars=False)
    return run


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_a_garbled_checkpoint_is_refused_by_eval_and_skipped_by_resume(trained_run, tmp_path, capsys, caplog):
    # Before: 2 000 garbled bytes in the middle went unnoticed (torch does not check the zip's CRCs):
    # `meld eval` printed a success table from corrupt weights; `--resume` died in sac.py.
    run = copy_run(trained_run, tmp_path / "run")
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    older = [p for p in RunDir(run).checkpoint_paths() if p != latest][-1]
    garble_middle(latest)
    result = Cli(capsys, "eval", "--run-dir", run, "--rounds", 1, "--videos", 0)
    assert result.returncode == 2 and f"{latest.name} is corrupt" in result.err, result.stderr[-2000:]
    assert "fails its CRC check" in result.err and f"--checkpoint {older}" in result.err
    garble_middle(run / "checkpoints" / "best.pt")
    result = Cli(capsys, "eval", "--run-dir", run, "--rounds", 1, "--videos", 0, "--checkpoint", "best")
    assert result.returncode == 2 and "best.pt is corrupt" in result.err
    result = Cli(capsys, "train", "--run-dir", run, "--resume", "--iterations", 5)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from the newest good checkpoint, {older.name}" in caplog.text
    assert progress(run)["iteration"] == 5


# -- 5. garbage in small files ---------------------------------------------------------------------
def test_best_json_without_a_score_is_replaced_by_the_next_validation(trained_run, tmp_path, caplog):
    # Before: KeyError traceback on resume.
    run = copy_run(trained_run, tmp_path / "run")
    (run / "checkpoints" / "best.json").write_text('{"metric": "who knows"}\n')
    run_training(tiny(num_iterations=6, eval_interval=2), run, resume=True, progress_bars=False)
    assert "has no numeric score; the next validation replaces best.pt" in caplog.text
    assert isinstance(RunDir(run).best_info()["score"], float)


def test_garbage_in_small_run_files_is_one_line(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    (run / "checkpoints" / "best.json").write_bytes(b"\x89PNG\xff\xfe")
    (run / "config.yaml").write_bytes(b"\xff\xfe\xfa garbage")
    result = Cli(capsys, "train", "--run-dir", run, "--resume")
    assert result.returncode == 2 and "config.yaml is not valid YAML" in result.err


# -- 6. write errors --------------------------------------------------------------------------------
def test_a_full_disk_is_one_line_that_says_what_to_free_and_progress_says_failed(tmp_path, capsys,
                                                                                  monkeypatch):
    # Before: `OSError: [Errno 28]` traceback.
    run = tmp_path / "run"
    failing_os_open(monkeypatch, run / "checkpoints", errno.ENOSPC, names=".ckpt_*")
    result = Cli(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--iterations", 2,
                 "--run-dir", run)
    assert result.returncode == 2
    assert "No space left on device" in result.err and "free space on that disk" in result.err
    assert "checkpoints/ckpt_" in result.err  # the file it could not write
    state = progress(run)
    assert state["status"] == "failed" and "No space left on device" in state["error"]


def test_a_read_only_run_dir_is_one_line_for_train(trained_run, tmp_path, capsys, monkeypatch):
    run = copy_run(trained_run, tmp_path / "run")
    failing_os_open(monkeypatch, run, errno.EROFS)
    result = Cli(capsys, "train", "--run-dir", run, "--resume", "--iterations", 5)
    assert result.returncode == 2 and "read-only" in result.err and str(run / "lock") in result.err


@pytest.mark.parametrize("where, code, why", [("run", errno.EROFS, "read-only"),
                                             ("eval", errno.ENOSPC, "No space left on device")])
def test_eval_of_a_run_it_cannot_write_keeps_its_results(trained_run, tmp_path, capsys, monkeypatch,
                                                         caplog, where, code, why):
    # Before: the traceback lost the evaluation that had just run.
    run = copy_run(trained_run, tmp_path / "run")
    failing_os_open(monkeypatch, run if where == "run" else run / "eval", code)
    before = sorted(p.relative_to(run) for p in (run / "eval").rglob("*"))
    result = Cli(capsys, "eval", "--run-dir", run, "--rounds", 1, "--videos", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all held-out tasks" in result.stdout
    out = Path(result.stdout.split("written to ")[1].split(")")[0])
    assert not out.is_relative_to(run) and json.loads((out / "summary.json").read_text())["rounds"] == 1
    shutil.rmtree(out.parent)
    assert "temporary folder" in caplog.text and why in caplog.text
    assert sorted(p.relative_to(run) for p in (run / "eval").rglob("*")) == before


# -- 7. temporary files and the final status ------------------------------------------------------
def test_stale_temp_files_are_removed_and_a_killed_run_is_reported(trained_run, tmp_path, caplog):
    # Before: temp files of killed writes stayed forever; nothing said the previous process had died.
    run = copy_run(trained_run, tmp_path / "run")
    stale = [run / "checkpoints" / ".ckpt_000000000300.pt.k2j4_x9a.tmp", run / ".progress.json.abc123.tmp",
             run / "eval" / ".summary.json.zz11.tmp", run / "eval" / "videos" / ".trial_00_task_01.tmp.mp4",
             run / "episodes" / "task_000" / ".ep_00000099.npz.q1w2e3.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 1000)
    kept = run / "eval" / "notes.tmp"  # not one of ours
    kept.write_text("mine")
    state = progress(run)
    state.update(status="running", pid=4242)  # what a SIGKILL leaves behind
    (run / "progress.json").write_text(json.dumps(state))
    run_training(None, run, resume=True, progress_bars=False)
    assert [p for p in stale if p.exists()] == [] and kept.exists()
    assert "removed 5 temporary file(s) of interrupted writes" in caplog.text
    assert "(pid 4242) ended while running, without a final status: it was killed or crashed" in caplog.text
    final = progress(run)
    assert final["status"] == "finished" and final["previous_status"] == "crashed"


# -- 8. checkpoints are weights, never code -------------------------------------------------------
class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_cannot_run_code(trained_run, tmp_path, capsys):
    # Before: torch.load(weights_only=False) ran the pickle's os.system under `meld eval --checkpoint`.
    run = copy_run(trained_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "counters": {}, "agent": Evil(marker)}, evil)
    result = Cli(capsys, "eval", "--run-dir", run, "--checkpoint", evil)
    assert not marker.exists()
    assert result.returncode == 2 and "refused" in result.err and "could run code" in result.err
    # the same file as the run's newest checkpoint: a resume falls back to the previous one
    newest = RunDir(run).checkpoint_paths()[-1]
    evil.replace(newest)
    with pytest.raises(CheckpointError, match="refused"):
        RunDir(run).load_checkpoint()
    assert not marker.exists()


def test_every_checkpoint_meld_writes_is_weights_only(trained_run):
    paths = list((trained_run / "checkpoints").glob("*.pt"))
    assert len(paths) == 3  # two rotating checkpoints and best.pt
    for path in paths:
        state = torch.load(path, weights_only=True)
        assert state["format"] == 1 and {"agent", "counters", "trainer_rng", "config"} <= set(state)
