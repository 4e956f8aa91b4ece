"""Soft actor-critic on the MELD belief [z1 mean, z1 std, z2 mean, z2 std].

Reference behaviour (the reference's `meld_agent.py`; network details from SLAC):

- Actor: ReLU MLP -> mean and log-std (clipped to [-20, 2]) -> Gaussian squashed by tanh into
  [-1, 1]. Critics: twin ReLU MLPs on [belief, action] -> scalar, each with a target copy updated
  by Polyak averaging (tau 0.005) after every step. Glorot-uniform init.
- Critic loss: 0.5 * MSE per critic, summed; target r + gamma * (min target Q(b', a') - alpha log pi(a'|b')),
  a' ~ pi(.|b'); no terminal cut (episodes end by time limit with discount 1). With `n_step` > 1 (not
  the reference) r is the discounted sum of the replayed rewards of up to n steps, b' the belief after
  them and gamma^m the discount.
- Actor loss: mean(alpha * log pi - min Q). Temperature loss: mean(-log_alpha * (log pi + H_target)),
  the gradient taken with respect to log alpha.
- The belief is an input only: it is computed without gradient, so nothing here changes the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from meld_core.config import SACConfig


def mlp(in_size: int, hidden: Sequence[int], out_size: int) -> nn.Sequential:
    """ReLU MLP with Glorot-uniform weights and zero biases."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_size, h), nn.ReLU()]
        in_size = h
    layers.append(nn.Linear(in_size, out_size))
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


class Actor(nn.Module):
    """belief (N, D) -> tanh-squashed diagonal Gaussian over actions in [-1, 1]^A."""

    def __init__(self, belief_size: int, action_dim: int, cfg: SACConfig):
        super().__init__()
        self.net = mlp(belief_size, cfg.actor_hidden, 2 * action_dim)
        self.log_std_min, self.log_std_max = cfg.log_std_min, cfg.log_std_max

    def distribution(self, belief: Tensor) -> tuple[TransformedDistribution, Tensor]:
        """(pi, tanh(mean)): the policy and its deterministic action."""
        mean, log_std = self.net(belief).chunk(2, dim=-1)
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        base = Independent(Normal(mean, log_std.exp()), 1)
        return TransformedDistribution(base, [TanhTransform(cache_size=1)]), torch.tanh(mean)

    def sample(self, belief: Tensor) -> tuple[Tensor, Tensor]:
        """Reparameterised action (N, A) and its log-probability (N,)."""
        pi, _ = self.distribution(belief)
        action = pi.rsample()
        return action, pi.log_prob(action)

    def forward(self, belief: Tensor, deterministic: bool = False) -> Tensor:
        pi, mode = self.distribution(belief)
        return mode if deterministic else pi.sample()


class TwinCritic(nn.Module):
    """Two independent Q networks on [belief, action]; returns (N,), (N,)."""

    def __init__(self, belief_size: int, action_dim: int, cfg: SACConfig):
        super().__init__()
        self.q1 = mlp(belief_size + action_dim, cfg.critic_hidden, 1)
        self.q2 = mlp(belief_size + action_dim, cfg.critic_hidden, 1)

    def forward(self, belief: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([belief, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


@dataclass
class Transitions:
    """An AC batch: beliefs b_i and b_{i+1} (N, D), actions a_i (N, A), TD rewards (N,); with n-step
    targets, the discounted reward sum of m steps, b_{i+m} as `next_belief` and `discount` g^m (N,)
    (None: gamma, one step)."""

    belief: Tensor
    action: Tensor
    reward: Tensor
    next_belief: Tensor
    discount: Tensor | None = None


class SAC(nn.Module):
    """Actor, twin critics with targets, learned temperature, and their optimisers."""

    def __init__(self, cfg: SACConfig, belief_size: int, action_dim: int,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(belief_size, action_dim, cfg)
        self.critic = TwinCritic(belief_size, action_dim, cfg)
        self.target_critic = TwinCritic(belief_size, action_dim, cfg)
        if cfg.target_init_copy:
            self.target_critic.load_state_dict(self.critic.state_dict())
        self.target_critic.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.initial_alpha)))
        self.to(device)  # before the optimisers are built, so they hold the device's parameters
        self.target_entropy = float(cfg.target_entropy if cfg.target_entropy is not None else -action_dim)
        fused = torch.device(device).type == "cuda"  # one kernel per optimiser step on CUDA
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps,
                                          fused=fused)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps,
                                           fused=fused)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, eps=cfg.adam_eps, fused=fused)

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.detach().exp()

    def td_target(self, batch: Transitions) -> Tensor:
        with torch.no_grad():
            next_action, next_log_pi = self.actor.sample(batch.next_belief)
            q1, q2 = self.target_critic(batch.next_belief, next_action)
            next_v = torch.min(q1, q2) - self.alpha * next_log_pi
            discount = self.cfg.gamma if batch.discount is None else batch.discount
            return self.cfg.reward_scale * batch.reward + discount * next_v

    def critic_loss(self, batch: Transitions, target: Tensor) -> Tensor:
        q1, q2 = self.critic(batch.belief, batch.action)
        w = self.cfg.td_loss_weight
        return w * (q1 - target).square().mean() + w * (q2 - target).square().mean()

    def _step(self, opt: torch.optim.Optimizer, loss: Tensor, params) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        opt.step()

    def update(self, batch: Transitions) -> dict[str, Tensor]:
        """One SAC step: critic, actor, temperature, then the Polyak target update."""
        # ---- critic
        target = self.td_target(batch)
        critic_loss = self.critic_loss(batch, target)
        self._step(self.critic_opt, critic_loss, self.critic.parameters())

        # ---- actor (critic weights frozen for this loss so no critic gradient is accumulated)
        action, log_pi = self.actor.sample(batch.belief)
        self.critic.requires_grad_(False)
        q1, q2 = self.critic(batch.belief, action)
        self.critic.requires_grad_(True)
        actor_loss = (self.alpha * log_pi - torch.min(q1, q2)).mean()
        self._step(self.actor_opt, actor_loss, self.actor.parameters())

        # ---- temperature (gradient with respect to log alpha)
        alpha_loss = -(self.log_alpha * (log_pi.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()

        # ---- target critics
        with torch.no_grad():
            online = list(self.critic.parameters())
            targets = list(self.target_critic.parameters())
            torch._foreach_lerp_(targets, online, self.cfg.tau)

        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach(),
            "alpha": self.alpha,
            "entropy": -log_pi.detach().mean(),
            "q_mean": torch.min(q1, q2).detach().mean(),
            "td_target_mean": target.mean(),
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt}
