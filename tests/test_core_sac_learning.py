"""SAC learns on fixed, fully informative inputs: the rung below MELD in the learning sanity ladder.

If these fail, MELD cannot learn either: the problem is in SAC or in its hyper-parameters, not in
the latent model or the belief.
"""

import torch

from meld_core.algo.sac import SAC, Transitions
from meld_core.config import SACConfig


def test_sac_learns_a_contextual_bandit():
    torch.manual_seed(0)
    cfg = SACConfig(actor_hidden=(64, 64), critic_hidden=(64, 64), batch_size=128, gamma=0.5,
                    actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    sac = SAC(cfg, 4, 1)
    targets = torch.tensor([0.6, -0.4])
    for _ in range(800):
        ctx = torch.randint(0, 2, (128,))
        b = torch.nn.functional.one_hot(ctx, 4).float()
        with torch.no_grad():
            a = sac.actor(b)
        sac.update(Transitions(b, a, -(a[:, 0] - targets[ctx]).abs(), b))
    with torch.no_grad():
        best = sac.actor(torch.eye(4)[:2], deterministic=True)[:, 0]
    assert torch.allclose(best, targets, atol=0.15), best

