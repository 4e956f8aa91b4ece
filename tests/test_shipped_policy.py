"""The trained WidowX policy shipped in models/widowx_insertion: it loads and meta-tests (one trial on one
held-out task, sparse reward only) with the code of this commit, without the episodes that trained it."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from meld_core.train.evaluation import evaluate  # noqa: E402
from meld_core.train.setup import load_run_agent  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "widowx_insertion"


def test_shipped_policy_is_small_and_holds_no_episodes():
    files = [p for p in SHIPPED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20
    assert not (SHIPPED / "episodes").exists()
    assert (SHIPPED / "policy.json").is_file() and (SHIPPED / "tasks.json").is_file()


def test_shipped_policy_meta_tests_one_held_out_task_with_the_sparse_reward():
    _, config, _, env, agent = load_run_agent(SHIPPED, device="cpu")
    try:
        assert config.env == "widowx_insertion" and config.model.reward_input == "sparse"
        assert len(env.eval_tasks) == 10
        result = evaluate(agent, env, [env.eval_tasks[0]], config.train.episodes_per_trial, 1,
                          config.model.reward_input, deterministic=True)
    finally:
        env.close()
    assert len(result.trials) == 1 and result.reward_input == "sparse"
    assert len(result.success_per_position) == config.train.episodes_per_trial == 2
    assert all(s in (0.0, 1.0) for s in result.success_per_position)
    assert np.isfinite(result.dense_return_per_position).all()
