"""Run directory: atomic files, checkpoints with a `latest` pointer, clear errors."""

from pathlib import Path

import pytest

from meld_core.files import atomic_write_text
from meld_core.train.rundir import CheckpointError, RunDir


def state(step):
    return {"counters": {"env_steps": step}, "agent": {"w": list(range(3))}}


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_checkpoints_keep_the_newest_and_point_latest(tmp_path):
    rd = RunDir(tmp_path)
    rd.make_dirs()
    assert rd.latest_checkpoint() is None
    for step in (10, 20, 30, 40):
        rd.save_checkpoint(state(step), step, keep=2)
    names = [p.name for p in rd.checkpoint_paths()]
    assert names == ["ckpt_000000000030.pt", "ckpt_000000000040.pt"]
    assert rd.latest_checkpoint().name == "ckpt_000000000040.pt"
    assert rd.load_checkpoint()["counters"]["env_steps"] == 40


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    rd = RunDir(tmp_path)
    rd.make_dirs()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        rd.load_checkpoint()


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    rd = RunDir(tmp_path)
    rd.make_dirs()
    rd.save_checkpoint(state(1), 1, keep=3)
    path = rd.save_checkpoint(state(2), 2, keep=3)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="corrupt.*ckpt_000000000001"):
        rd.load_checkpoint()


def test_dangling_latest_pointer(tmp_path):
    rd = RunDir(tmp_path)
    rd.make_dirs()
    (rd.checkpoints_dir / "latest").write_text("ckpt_000000000099.pt\n")
    with pytest.raises(CheckpointError, match="does not exist"):
        rd.latest_checkpoint()


def test_eval_history_survives_a_line_cut_short_by_a_crash(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.make_dirs()
    assert rd.eval_history() == []
    rd.append_eval_record({"step": 1})
    with open(rd.eval_history_path, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "succ')  # SIGKILL mid-write
    rd.append_eval_record({"step": 3})  # the resumed run's next evaluation
    assert [r["step"] for r in rd.eval_history()] == [1, 3]


def test_best_checkpoint_survives_rotation_and_resolves_by_name(tmp_path):
    rd = RunDir(tmp_path)
    rd.make_dirs()
    with pytest.raises(CheckpointError, match="no best checkpoint.*validation_trials"):
        rd.resolve_checkpoint("best")
    assert rd.best_info() is None
    rd.save_best_checkpoint(state(5), {"score": 0.5, "counters": {"env_steps": 5}})
    for step in (10, 20, 30):
        rd.save_checkpoint(state(step), step, keep=1)
    assert [p.name for p in rd.checkpoint_paths()] == ["ckpt_000000000030.pt"]
    assert rd.best_info()["score"] == 0.5
    assert rd.load_checkpoint(rd.resolve_checkpoint("best"))["counters"]["env_steps"] == 5
    assert rd.resolve_checkpoint(None) is None and rd.resolve_checkpoint("latest") is None
    assert rd.resolve_checkpoint("some/file.pt") == Path("some/file.pt")


def test_one_process_per_role_and_the_lock_dies_with_its_holder(tmp_path):
    import subprocess
    import sys
    import time

    from meld_core.train.rundir import RunLockedError

    rd = RunDir(tmp_path / "run")
    with rd.lock("actor"):
        with pytest.raises(RunLockedError, match="another actor"), rd.lock("learner", "actor"):
            pass
        with rd.lock("learner"):  # the other role is free
            pass
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from meld_core.train.rundir import RunDir\n"
         "with RunDir(sys.argv[1]).lock('learner'):\n    print('held', flush=True); time.sleep(60)",
         str(rd.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"), rd.lock("learner"):
            pass
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with rd.lock("learner"):  # released by the kernel when its holder was killed
        pass
