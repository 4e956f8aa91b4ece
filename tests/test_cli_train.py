"""`meld train` / `meld eval` as a user runs them: one-line errors, and resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meld_core import cli

ROOT = Path(__file__).resolve().parents[1]


def meld(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "meld_core.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


class Result:
    """`meld ARGS` run in-process (cheap: no interpreter and torch start-up per call)."""

    def __init__(self, capsys, *args):
        self.returncode = cli.main(list(args))
        captured = capsys.readouterr()
        self.stdout, self.stderr = captured.out, captured.err


def one_line_error(result, needle):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("meld: error:")]
    assert len(lines) == 1 and needle in lines[0], result.stderr[-2000:]


def test_unknown_env_and_preset(tmp_path, capsys):
    one_line_error(Result(capsys, "train", "--env", "moon_lander", "--preset", "smoke", "--run-dir",
                          str(tmp_path / "a")), "unknown environment 'moon_lander'")
    one_line_error(Result(capsys, "train", "--env", "point_nav", "--preset", "giant", "--run-dir",
                          str(tmp_path / "b")), "unknown preset 'giant'")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_eval_without_checkpoint_or_run(tmp_path, capsys):
    one_line_error(Result(capsys, "eval", "--run-dir", str(tmp_path / "nothing")), "not a meld run directory")
    Result(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--run-dir", str(tmp_path / "x"),
           "--iterations", "0")
    for path in (tmp_path / "x" / "checkpoints").iterdir():
        path.unlink()
    one_line_error(Result(capsys, "eval", "--run-dir", str(tmp_path / "x")), "no checkpoint yet")


def test_train_eval_and_bad_run_dirs(tmp_path, capsys, caplog):
    run = tmp_path / "run"
    result = Result(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--run-dir", str(run),
                    "--iterations", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "success ep 1" in result.stdout
    result = Result(capsys, "eval", "--run-dir", str(run), "--rounds", "1", "--videos", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all held-out tasks" in result.stdout
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["num_trials"] == 2 and summary["rounds"] == 1
    assert (run / "eval" / "overview.png").is_file() and "overview.png" in result.stdout
    # the checkpoint that did best on the preset's train-task validation
    result = Result(capsys, "eval", "--run-dir", str(run), "--rounds", "1", "--videos", "0",
                    "--checkpoint", "best")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "eval" / "summary.json").read_text())["checkpoint"] == "best"
    (run / "checkpoints" / "best.pt").unlink()
    one_line_error(Result(capsys, "eval", "--run-dir", str(run), "--checkpoint", "best"),
                   "no best checkpoint")
    # the same directory, another config, with or without --resume
    one_line_error(Result(capsys, "train", "--env", "point_nav", "--preset", "small", "--run-dir", str(run)),
                   "different configuration")
    # the same config again without --resume
    one_line_error(Result(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--iterations", "2",
                          "--run-dir", str(run)), "pass --resume")
    # a corrupt checkpoint: eval refuses it and names the older one that loads; a resume falls back to it
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    older = [p for p in (run / "checkpoints").glob("ckpt_*.pt") if p != latest]
    latest.write_bytes(latest.read_bytes()[:100])
    one_line_error(Result(capsys, "eval", "--run-dir", str(run)),
                   f"is corrupt (BadZipFile: File is not a zip file); evaluate an older one with "
                   f"--checkpoint {older[0]}")
    result = Result(capsys, "train", "--run-dir", str(run), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from the newest good checkpoint, {older[0].name}" in caplog.text
    # every checkpoint corrupt: nothing to resume from
    for path in (run / "checkpoints").glob("*.pt"):
        path.write_bytes(path.read_bytes()[:100])
    one_line_error(Result(capsys, "train", "--run-dir", str(run), "--resume"), "no other checkpoint")


def read_progress(run):
    try:
        return json.loads((run / "progress.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def episode_ids(run):
    return sorted(int(p.stem.split("_")[1]) for p in (run / "episodes").glob("task_*/ep_*.npz"))


@pytest.mark.slow
def test_sigkill_mid_training_then_resume(tmp_path):
    run = tmp_path / "run"
    iterations = 12
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "meld_core.cli", "train", "--env", "point_nav", "--preset",
                             "smoke", "--iterations", str(iterations), "--run-dir", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            p = read_progress(run)
            if p.get("phase") == "train" and p.get("iteration", 0) >= 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"training ended before it could be killed: {proc.stderr.read()[-2000:]}")
            time.sleep(0.02)
        else:
            pytest.fail("training did not reach iteration 3 within 120 s")
        time.sleep(0.3)  # land somewhere inside the next collect or train phase
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    before = episode_ids(run)
    at_kill = read_progress(run)
    assert at_kill["status"] in ("running", "evaluating")  # killed mid-run, not after a clean stop
    assert before == list(range(len(before)))
    result = meld("train", "--run-dir", str(run), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    after = episode_ids(run)
    final = read_progress(run)
    assert final["status"] == "finished" and final["phase"] == "done" and final["iteration"] == iterations
    assert after[: len(before)] == before  # nothing stored was lost
    assert after == list(range(len(after)))  # ids continue without gaps or duplicates
    assert final["episodes"] == len(after) and final["env_steps"] == 8 * len(after)
    warmup, per_iteration = 3 * 2, 2
    assert warmup + iterations * per_iteration <= len(after) <= warmup + iterations * per_iteration + 1
    assert final["model_steps"] >= at_kill["model_steps"] and final["ac_steps"] >= at_kill["ac_steps"]
