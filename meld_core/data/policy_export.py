"""A trained policy as a minimal run directory, small enough to ship in a repository or a message.

    meld export --run-dir runs/wx_stage2 --format policy --checkpoint best --out models/widowx_insertion
    meld eval --run-dir models/widowx_insertion --rounds 3 --out runs/eval_shipped

The export holds what `meld eval` (and the ROS agent node's eval mode) needs and nothing else:
config.yaml (the run's config; `offline_run` and `init_from` cleared, they name folders of the
machine that trained it), tasks.json, and one checkpoint with the networks only (no optimiser state,
replay or episodes: about a third of a training checkpoint) behind `checkpoints/latest`, plus
policy.json saying where it came from. It is a run directory, so every tool that reads runs reads
it; it cannot be resumed for training (no optimisers, no episodes).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from meld_core.data.run_episodes import ExportError
from meld_core.train.rundir import RunDir

WEIGHT_KEYS = ("config", "model", "sac")  # what MeldAgent.load_weights needs of an agent state


def export_policy(run_dir: str | Path, out: str | Path, checkpoint: str | None = "best") -> Path:
    """Write the policy of `run_dir`'s `checkpoint` ("best", "latest" or a file) to `out`."""
    from meld_core.train.setup import load_run_config

    rd = RunDir(run_dir).require()
    dest = RunDir(out)
    if dest.root.exists() and any(dest.root.iterdir()):
        raise ExportError(f"{dest.root} is not empty: give a new folder for the exported policy")
    config = load_run_config(rd)
    path = rd.resolve_checkpoint(checkpoint)
    state = rd.load_checkpoint(path)
    source = path.name if path is not None else rd.latest_checkpoint().name
    policy: dict[str, Any] = {
        "format": state.get("format", 1),
        "agent": {**{k: state["agent"][k] for k in WEIGHT_KEYS}, "weights_only": True},
        "counters": state["counters"],
        "config": dataclasses.asdict(dataclasses.replace(config, offline_run=None, init_from=None)),
        "time": time.time(),
    }
    dest.root.mkdir(parents=True, exist_ok=True)
    dest.write_yaml(dest.config_path, policy["config"])
    dest.write_json(dest.tasks_path, rd.read_json(rd.tasks_path))
    saved = dest.save_checkpoint(policy, int(state["counters"]["global_step"]), keep=1)
    info = {"source_run": str(rd.root.resolve()), "source_checkpoint": source,
            "counters": state["counters"], "exported": time.strftime("%Y-%m-%d %H:%M:%S")}
    best = rd.best_info() if checkpoint == "best" else None
    if best is not None:
        info["validation_success_per_position"] = best["validation_success_per_position"]
    (dest.root / "policy.json").write_text(json.dumps(info, indent=2) + "\n")
    return saved
