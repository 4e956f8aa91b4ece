"""`meld train` / `meld eval` as a user runs them: one-line errors, and resume after SIGKILL."""

import dataclasses
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


def latest_eval(eval_root):
    latest = json.loads((eval_root / "latest.json").read_text())
    folder = eval_root / latest["folder"]
    return folder, json.loads((folder / "summary.json").read_text())


def test_train_eval_and_bad_run_dirs(tmp_path, capsys, caplog):
    run = tmp_path / "run"
    result = Result(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--run-dir", str(run),
                    "--iterations", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "success ep 1" in result.stdout and "success ep 2" in result.stdout and "ep 0" not in result.stdout
    assert "evaluation at the end of training" in result.stdout
    result = Result(capsys, "eval", "--run-dir", str(run), "--rounds", "1", "--videos", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all held-out tasks" in result.stdout
    progress = json.loads((run / "progress.json").read_text())
    folder, summary = latest_eval(run / "eval")
    assert folder.name == f"latest_{progress['env_steps']:09d}"  # which checkpoint, at which env steps
    assert f"checkpoint latest: iteration 2, {progress['env_steps']} env steps" in result.stdout
    assert summary["num_trials"] == 2 and summary["rounds"] == 1 and summary["source"] == "meld eval"
    assert len(summary["videos"]) == 1 and (folder / "overview.png").is_file()
    assert "overview.png" in result.stdout
    # the same command again without videos: a fresh folder, no stale video left from the first
    assert Result(capsys, "eval", "--run-dir", str(run), "--rounds", "1", "--videos", "0").returncode == 0
    assert not (folder / "videos").exists() and latest_eval(run / "eval")[1]["videos"] == []
    assert not list((run / "eval").glob(".*"))  # no temporary folders left
    # the checkpoint that did best on the preset's train-task validation
    result = Result(capsys, "eval", "--run-dir", str(run), "--rounds", "1", "--videos", "0",
                    "--checkpoint", "best")
    assert result.returncode == 0, result.stderr[-3000:]
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    folder, summary = latest_eval(run / "eval")
    assert summary["checkpoint"] == "best" and folder.name == f"best_{best['counters']['env_steps']:09d}"
    assert f"checkpoint best: iteration {best['counters']['iteration']}," in result.stdout
    # --out: the evaluation goes elsewhere and nothing new is written into the run directory
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    result = Result(capsys, "eval", "--run-dir", str(run), "--rounds", "1", "--videos", "0",
                    "--out", str(tmp_path / "elsewhere"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert latest_eval(tmp_path / "elsewhere")[0].name.startswith("latest_")
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    (run / "checkpoints" / "best.pt").unlink()
    one_line_error(Result(capsys, "eval", "--run-dir", str(run), "--checkpoint", "best"),
                   "no best checkpoint")
    # the same directory, another config, with or without --resume: the message names what differs
    one_line_error(Result(capsys, "train", "--env", "point_nav", "--preset", "small", "--run-dir", str(run)),
                   "preset: 'smoke' (stored) vs 'small' (new)")
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


def test_eval_refuses_zero_episodes_per_trial(tmp_path, capsys):
    for flag, value in (("--episodes-per-trial", "0"), ("--rounds", "0"), ("--videos", "-1")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["eval", "--run-dir", str(tmp_path), flag, value])
        assert exc.value.code == 2 and f"argument {flag}: must be >=" in capsys.readouterr().err


def test_a_failed_start_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    smoke = ("train", "--env", "point_nav", "--preset", "smoke", "--iterations", "1")
    run = tmp_path / "run"
    result = Result(capsys, *smoke, "--run-dir", str(run), "--device", "cuda")
    one_line_error(result, "device 'cuda' requested but CUDA is not available")
    assert "Traceback" not in result.stderr and not run.exists()
    one_line_error(Result(capsys, *smoke, "--run-dir", str(run), "--resume", "--device", "cuda"),
                   "CUDA is not available")
    assert not run.exists()
    # an environment the model does not fit (found when the env is built)
    one_line_error(Result(capsys, *smoke, "--run-dir", str(run), "--env_config.image_size=64"),
                   "environment images are (64, 64, 3) but the model expects (32, 32, 3)")
    assert not run.exists()
    # offline data that does not exist, or whose train tasks differ
    one_line_error(Result(capsys, *smoke, "--run-dir", str(run), "--offline-run", str(tmp_path / "none")),
                   "is not a meld run directory")
    assert not run.exists()
    other = tmp_path / "other"
    assert Result(capsys, *smoke, "--run-dir", str(other), "--env_config.task_seed=5").returncode == 0
    one_line_error(Result(capsys, *smoke, "--run-dir", str(run), "--offline-run", str(other)),
                   "(env_config: task_seed: 5 (offline run) vs 0 (this run))")
    assert not run.exists()
    # the retry is not blocked by the failed starts
    result = Result(capsys, *smoke, "--run-dir", str(run), "--device", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_config_file_with_a_wrong_type_names_the_field(tmp_path, capsys):
    import yaml

    from meld_core.config.presets import preset_config

    good = dataclasses.asdict(preset_config("point_nav", "smoke"))
    cases = [({"model": {**good["model"], "lr": "1e-3"}},
              "RunConfig.model.lr: expected float, got the string '1e-3'"),
             ({"model": {**good["model"], "base_depth": 4.5}},
              "RunConfig.model.base_depth: expected int, got float 4.5"),
             ({"env_config": {"episode_lenght": 30}},
              "RunConfig.env_config: unknown key(s) ['episode_lenght']"),
             ({"sac": {**good["sac"], "actor_hidden": "64"}},
              "RunConfig.sac.actor_hidden: expected a list of int")]
    for i, (change, needle) in enumerate(cases):
        path = tmp_path / f"config_{i}.yaml"
        path.write_text(yaml.safe_dump({**good, **change}))
        one_line_error(Result(capsys, "train", "--config", str(path), "--run-dir", str(tmp_path / "run")),
                       needle)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    one_line_error(Result(capsys, "train", "--config", str(empty), "--run-dir", str(tmp_path / "run")),
                   "got null (an empty file?)")
    assert not (tmp_path / "run").exists()
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump({**good, "model": {**good["model"], "lr": 1e-3}}))
    result = Result(capsys, "train", "--config", str(path), "--run-dir", str(tmp_path / "run"),
                    "--iterations", "1", "--sac.batch_size=16")
    assert result.returncode == 0, result.stderr[-3000:]
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["model"]["lr"] == 1e-3 and stored["sac"]["batch_size"] == 16


def test_overrides_are_stored_and_a_resumed_run_refuses_to_change(tmp_path, capsys):
    import yaml

    run = tmp_path / "run"
    command = ("train", "--env", "point_nav", "--preset", "smoke", "--run-dir", str(run),
               "--sac.batch_size=16", "--env_config.episode_length", "6", "--sac.td_across_resets=true",
               "--model.grad_clip=null")
    result = Result(capsys, *command, "--iterations", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["sac"]["batch_size"] == 16 and stored["env_config"]["episode_length"] == 6
    assert stored["sac"]["td_across_resets"] is True and stored["model"]["grad_clip"] is None
    assert json.loads((run / "progress.json").read_text())["env_steps"] % 6 == 0
    for flags, needle in ((("--seed", "99"), "train.seed: 1 (run) vs 99 (command)"),
                          (("--preset", "paper"), "preset: 'smoke' (run) vs 'paper' (command)"),
                          (("--sac.batch_size=32",), "sac.batch_size: 16 (run) vs 32 (command)"),
                          (("--env_config.episode_length=8",),
                           "env_config.episode_length: 6 (run) vs 8 (command)")):
        one_line_error(Result(capsys, "train", "--run-dir", str(run), "--resume", *flags), needle)
    # the iteration budget may change on resume, and the same command again with --resume is accepted
    result = Result(capsys, "train", "--run-dir", str(run), "--resume", "--iterations", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    result = Result(capsys, *command, "--resume", "--iterations", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "progress.json").read_text())["iteration"] == 3
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["num_iterations"] == 3
    # flags that a resumed run cannot use are named with the type they need; typos get a suggestion
    result = Result(capsys, "train", "--run-dir", str(run), "--resume", "--model.base_depth=4.5")
    assert result.returncode == 2 and "--model.base_depth" in result.stderr and "INT" in result.stderr
    result = Result(capsys, "train", "--run-dir", str(run), "--resume", "--sac.batch_sise=3")
    assert result.returncode == 2 and "--sac.batch_size" in result.stderr
    one_line_error(Result(capsys, "train", "--run-dir", str(run), "--resume", "--seed", "2",
                          "--train.seed=3"), "--seed and --train.seed both set train.seed")


def test_train_help_shows_every_setting_with_the_presets_default_and_the_exit_statuses(capsys):
    result = Result(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--help")
    assert result.returncode == 0
    out = " ".join(result.stdout.split())
    assert "--sac.batch_size INT" in out and "(default: 64)" in out  # the smoke preset's, not SACConfig's 512
    assert "--env_config.episode_length INT" in out and "--train.num_iterations INT" in out
    assert "exit status:" in out and "3 stopped by Ctrl-C or SIGTERM" in out
    result = Result(capsys, "train", "--help")
    assert result.returncode == 0 and "--sac.batch_size INT" in result.stdout
    assert "(default: 512)" in result.stdout


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


def start_training(run, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "meld_core.cli", "train", "--env", "point_nav", "--preset",
                             "smoke", "--run-dir", str(run), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def wait_for_iteration(proc, run, iteration, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = read_progress(run)
        if p.get("phase") == "train" and p.get("iteration", 0) >= iteration:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    pytest.fail(f"training did not reach iteration {iteration} within {timeout} s")


@pytest.mark.slow
def test_without_a_terminal_status_lines_are_printed(tmp_path):
    proc = start_training(tmp_path / "run", "--iterations", "3", "--status-interval", "0.05")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    status = [line for line in err.splitlines() if " status: " in line]
    assert len(status) >= 5, err[-3000:]
    assert any("meta-training 1/3 iterations (33%)" in line and "env steps/s" in line and "ETA" in line
               for line in status), err[-3000:]
    assert any(line.split(" status: ")[1].startswith("model pre-training") for line in status)
    assert "\r" not in err  # no progress bar redrawn into a log file
    assert "success ep 2" in out


def interrupt_training(run, signals):
    """Train the smoke preset for long, send SIGINT `signals` times once it trains, return rc, out, err."""
    proc = start_training(run, "--iterations", "200")
    try:
        wait_for_iteration(proc, run, 1)
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.01)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


@pytest.mark.slow
def test_ctrl_c_stops_with_status_3_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    returncode, out, err = interrupt_training(run, 1)
    assert returncode == cli.EXIT_STOPPED == 3, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("meld: stopped at train (iteration ") and "/200" in last, err[-3000:]
    assert last.endswith(f"; resume with: meld train --run-dir {run} --resume")
    assert "all held-out tasks" not in out  # no old evaluation table passed off as the result
    assert read_progress(run)["status"] == "stopped"
    # the printed command continues the run
    more = str(read_progress(run)["iteration"] + 1)
    result = meld("train", "--run-dir", str(run), "--resume", "--iterations", more)
    assert result.returncode == 0, result.stderr[-3000:]
    # a second Ctrl-C aborts at once
    returncode, out, err = interrupt_training(tmp_path / "other", 2)
    assert returncode == cli.EXIT_ABORTED == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "meld: interrupted"


def test_stage_two_from_the_command_line_starts_from_stage_one(tmp_path, capsys):
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    assert Result(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--run-dir", str(stage1),
                  "--iterations", "1").returncode == 0
    result = Result(capsys, "train", "--env", "point_nav", "--preset", "smoke", "--offline-run", str(stage1),
                    "--init-from", str(stage1), "--run-dir", str(stage2), "--iterations", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    import yaml

    stored = yaml.safe_load((stage2 / "config.yaml").read_text())
    assert stored["init_from"] == stored["offline_run"] == str(stage1.resolve())
    assert stored["model"]["reward_input"] == "sparse"
