"""`meld export --format policy`: a trained policy as a minimal run directory that `meld eval` reads."""

import json

import pytest
import torch

from meld_core import cli
from meld_core.config.presets import preset_config
from meld_core.data.policy_export import export_policy
from meld_core.data.run_episodes import ExportError
from meld_core.train.rundir import RunDir, RunDirError
from meld_core.train.setup import load_run_agent
from meld_core.train.trainer import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("policy") / "run"
    run_training(preset_config("point_nav", "smoke"), run, progress_bars=False)
    return run


def test_exported_policy_holds_the_networks_and_meld_eval_reads_it(trained, tmp_path, capsys):
    out = tmp_path / "models" / "point_nav"
    assert cli.main(["export", "--run-dir", str(trained), "--format", "policy", "--out", str(out)]) == 0
    assert "meld eval --run-dir" in capsys.readouterr().out
    files = sorted(p.name for p in out.iterdir())
    assert files == ["checkpoints", "config.yaml", "policy.json", "tasks.json"]
    assert not (out / "episodes").exists()
    info = json.loads((out / "policy.json").read_text())
    assert info["source_checkpoint"] == "best.pt"
    assert info["counters"] == RunDir(trained).best_info()["counters"]
    exported = RunDir(out).load_checkpoint()
    source = RunDir(trained).load_checkpoint(RunDir(trained).best_checkpoint_path)
    assert exported["agent"]["weights_only"] and "model_opt" not in exported["agent"]
    size = RunDir(out).latest_checkpoint().stat().st_size
    assert size < RunDir(trained).best_checkpoint_path.stat().st_size
    _, _, _, env, agent = load_run_agent(out)
    env.close()
    for part in ("model", "sac"):
        for key, value in getattr(agent, part).state_dict().items():
            assert torch.equal(value, source["agent"][part][key]), key
    assert cli.main(["eval", "--run-dir", str(out), "--rounds", "1", "--videos", "0",
                     "--out", str(tmp_path / "eval")]) == 0
    assert not (out / "eval").exists()  # --out keeps the shipped folder clean


def test_an_exported_policy_is_not_resumed_and_export_refuses_a_used_folder(trained, tmp_path):
    out = tmp_path / "policy"
    export_policy(trained, out, "latest")
    with pytest.raises(RunDirError, match="exported policy"):
        run_training(None, out, resume=True, progress_bars=False)
    with pytest.raises(ExportError, match="not empty"):
        export_policy(trained, out)
