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


def test_async_roles_lock_apart_and_clean_up_only_their_own_temp_files(tmp_path):
    from meld_core.train.rundir import RunLockedError

    rd = RunDir(tmp_path / "run")
    rd.make_dirs()
    atomic_write_text(rd.config_path, "x: 1\n")  # a run (the lock files stay)
    actor_tmp = rd.episodes_dir / "task_000" / ".ep_00000003.npz.a1b2.tmp"
    learner_tmp = rd.checkpoints_dir / ".ckpt_000000000010.pt.c3d4.tmp"
    progress_tmp = rd.root / ".progress.json.e5f6.tmp"  # the learner's, at the top of the run
    config_tmp = rd.root / ".config.yaml.g7h8.tmp"  # the actor's
    best_tmp = rd.checkpoints_dir / ".best.pt.i9j0.tmp"  # the actor's (validation runs where the env is)
    actor_tmp.parent.mkdir(parents=True)
    for path in (actor_tmp, learner_tmp, progress_tmp, config_tmp, best_tmp):
        path.write_bytes(b"half")
    with rd.lock("async actor", ("actor",)):
        # the learner may be writing its own files right now: the actor leaves them alone
        assert not actor_tmp.exists() and not config_tmp.exists() and not best_tmp.exists()
        assert learner_tmp.exists() and progress_tmp.exists()
        with rd.lock("async learner", ("learner",)):
            assert not learner_tmp.exists() and not progress_tmp.exists()
        with pytest.raises(RunLockedError, match="async actor"), rd.lock("training"):  # both roles
            pass
    assert (rd.root / "lock").is_file() and (rd.root / "lock_learner").is_file()
