"""What agent_node tells its user while it trains (meld_core.bridge.agent_run.AgentProgressHook): a
console line per warm-up episode with the time left, and progress published at every episode.

Before: the `small` preset spent 8-9 minutes in warm-up with nothing on the console or on
/meld/agent/progress but a phase line."""

import dataclasses

from meld_core.bridge.agent_run import AgentProgressHook
from meld_core.config.presets import preset_config
from meld_core.train.trainer import run_training


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 30.0  # every episode takes 30 s
        return self.t


def test_warm_up_episodes_are_counted_on_the_console_and_published(tmp_path):
    cfg = preset_config("point_nav", "smoke")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_iterations=1))
    lines, published = [], []
    hook = AgentProgressHook(lines.append, lambda: published.append(1), clock=Clock())
    trainer = run_training(cfg, tmp_path / "run", hooks=[hook], progress_bars=False)
    total = trainer.warmup_episodes()[1]
    warmup = [line for line in lines if line.startswith("warm-up: episode")]
    assert len(warmup) == total and warmup[-1] == f"warm-up: episode {total}/{total} (random policy)"
    assert warmup[0] == f"warm-up: episode 1/{total} (random policy), about {(total - 1) * 0.5:.1f} min left"
    assert lines[0] == f"trainer phase: warmup (0/{total} random-policy episodes on disk)"
    assert any(line.startswith("training iteration 1 complete") for line in lines)
    assert len(published) >= trainer.counters.episodes  # at every episode (and phase, iteration)
