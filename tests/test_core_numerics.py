"""The learner's numbers and checkpoint format stay those of the code before the speed work (4f43488).

Golden values in tests/data/ were recorded with that code (fp32, one thread, torch 2.13):

    PYTHONPATH=. python tests/test_core_numerics.py --record    # only to re-record on purpose

- the model and actor-critic losses of two gradient steps on a fixed batch and seed, for the
  one-camera and the two-camera (tall) encoders and the GRU variant, match within fp32 tolerance;
- the agent's state_dict has the same entries with the same shapes (checkpoints written by the old
  code load unchanged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from meld_core.algo.agent import MeldAgent
from meld_core.config import DeviceConfig, ModelConfig, SACConfig
from meld_core.testing.core_fakes import random_episode

DATA = Path(__file__).parent / "data"
STEPS_FILE = DATA / "golden_learner_steps.json"
KEYS_FILE = DATA / "golden_state_dict_shapes.json"

# Small enough for CI, large enough that every conv path of the encoder and decoder is taken
# (stride-2 layers with many and with few output positions, the full-kernel last/first layers).
CASES = {
    "tall_stochastic": dict(image_shape=(64, 32, 3), z2_transition="stochastic"),
    "square_gru": dict(image_shape=(32, 32, 3), z2_transition="gru"),
}

pytestmark = pytest.mark.usefixtures("one_thread")


def case_agent(name: str) -> MeldAgent:
    model = ModelConfig(latent1_size=8, latent2_size=4, base_depth=4, hidden_size=32, reward_tile=4,
                        **CASES[name])
    sac = SACConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64)
    return MeldAgent(model, sac, action_dim=3, device=DeviceConfig(device="cpu", cpu_bf16=False), seed=0)


def learner_steps(name: str) -> dict[str, list[float]]:
    """Losses of two model and two AC steps on a fixed batch, then the model's gradient norms (fp32)."""
    from meld_core.algo.replay import stack_trials

    agent = case_agent(name)
    shape = agent.model_cfg.image_shape
    rng = np.random.default_rng(0)
    batch = stack_trials([[random_episode(rng, 0, 6, shape, 3) for _ in range(2)] for _ in range(3)])
    out: dict[str, list[float]] = {"model_loss": [], "kl_divergence": [], "critic_loss": [], "actor_loss": []}
    for _ in range(2):
        m = agent.update_model(batch)
        a = agent.update_actor_critic(batch)
        out["model_loss"].append(m["model_loss"])
        out["kl_divergence"].append(m["kl_divergence"])
        out["critic_loss"].append(a["critic_loss"])
        out["actor_loss"].append(a["actor_loss"])
    # Gradients of a third model loss, per part of the model (the backward pass itself).
    tb = batch.to_torch()
    agent.model.zero_grad(set_to_none=True)
    loss, _ = agent.model.elbo(tb.images, tb.actions, tb.dense, tb.sparse)
    loss.backward()
    for part, module in agent.model.parameter_groups():
        norm = torch.stack([p.grad.norm() for p in module.parameters() if p.grad is not None]).norm()
        out[f"grad_norm_{part}"] = [float(norm)]
    return out


def state_shapes(agent: MeldAgent) -> dict[str, dict[str, list[int]]]:
    state = agent.state_dict()
    return {part: {k: list(v.shape) for k, v in state[part].items()} for part in ("model", "sac")}


def reference_agent() -> MeldAgent:
    return MeldAgent(ModelConfig(), SACConfig(), 7, DeviceConfig(device="cpu", cpu_bf16=False))


@pytest.mark.parametrize("name", sorted(CASES))
def test_learner_losses_match_the_code_before_the_speed_work(name):
    golden = json.loads(STEPS_FILE.read_text())[name]
    got = learner_steps(name)
    for key, values in golden.items():
        np.testing.assert_allclose(got[key], values, rtol=2e-4, atol=1e-5, err_msg=f"{name}: {key}")


def test_state_dict_entries_and_shapes_are_unchanged():
    golden = json.loads(KEYS_FILE.read_text())
    got = {"reference": state_shapes(reference_agent()),
           **{name: state_shapes(case_agent(name)) for name in sorted(CASES)}}
    assert got == golden


if __name__ == "__main__" and "--record" in sys.argv:
    torch.set_num_threads(1)
    STEPS_FILE.write_text(json.dumps({name: learner_steps(name) for name in sorted(CASES)}, indent=1) + "\n")
    shapes = {"reference": state_shapes(reference_agent()),
              **{name: state_shapes(case_agent(name)) for name in sorted(CASES)}}
    KEYS_FILE.write_text(json.dumps(shapes, indent=1) + "\n")
