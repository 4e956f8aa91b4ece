"""`meld train --env widowx_insertion --preset smoke` as a user runs it, then `meld eval` on the run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.render
@pytest.mark.slow
def test_widowx_smoke_train_then_eval(tmp_path):
    run_dir = tmp_path / "wx"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    train = subprocess.run(
        [sys.executable, "-m", "meld_core.cli", "train", "--env", "widowx_insertion", "--preset", "smoke",
         "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (run_dir / "config.yaml").is_file()
    assert list((run_dir / "checkpoints").glob("*.pt")), "no checkpoint written"
    episodes = list((run_dir / "episodes").rglob("*.npz"))
    assert episodes, "no episode stored"
    assert list((run_dir / "tb").rglob("events.out.tfevents.*")), "no TensorBoard events"

    evaluate = subprocess.run(
        [sys.executable, "-m", "meld_core.cli", "eval", "--run-dir", str(run_dir), "--rounds", "1"],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    latest = json.loads((run_dir / "eval" / "latest.json").read_text())
    summary = json.loads((run_dir / "eval" / latest["folder"] / "summary.json").read_text())
    assert latest["source"] == "meld eval" and latest["folder"].startswith("latest_")
    assert summary, "empty eval summary"
    assert "success" in evaluate.stdout.lower()
