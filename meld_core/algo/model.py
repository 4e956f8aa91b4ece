"""MELD latent state model: image encoder/decoder, reward decoder, priors and posteriors, ELBO.

Faithful to the reference code (github.com/tonyzhaozh/meld, `meld/networks/meld_model_network.py`):

- Two latents, z1 (64) and z2 (32), diagonal Gaussians with std = softplus(raw) + 1e-5; every
  conditional is a 2x(8*bd) leaky-ReLU MLP with a linear output of size 2*latent.
- Posterior features are CNN(image_t) with the scalar reward r_t tiled 32 times appended.
- z2's posterior *is* its prior network, so only z1 has a KL term (analytic, KL(q || p)).
- A trial is E episodes laid end to end. Only the trial's first frame uses the first-step
  networks; every later frame (the reset frame of a later episode included) uses the step networks,
  conditioned on the previous frame's z2 *sample* and the previous frame's action (for a reset
  frame that is the previous episode's boundary action, which the environment ignored).
- Optional departure (`ModelConfig.z2_transition="gru"`): z2 becomes a deterministic recurrent
  state, z2_0 = tanh(mean of the first-step net) and z2_t = GRUCell([z1_t, a_{t-1}], z2_{t-1});
  its "std" is reported as zeros. Everything else (z1 prior/posterior on z2_{t-1}, KL, decoders)
  is unchanged. A deterministic path lets the belief hold what an earlier episode revealed.
- ELBO = mean_t log p(x_t | z_t) - mean_t KL_t + w * mean_t log p(r_t | z_t); the loss is the
  batch mean of -ELBO.

Deliberate differences: the loss is not divided by num_tasks_per_train (cosmetic under Adam);
'SAME' padding is symmetric (TF pads the odd extra pixel at the end).

Tensor layout: images arrive as uint8 (B, L, H, W, 3); the convolutions see (N, 3, H, W) built
as a permuted view, which is already channels_last in memory.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence

from meld_core.algo.conv import Conv2d, ConvTranspose2d, run_stack
from meld_core.config import ModelConfig, supported_image_shape


def _init_tf_style(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases (the TF/Keras defaults the reference ran with)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _conv_kernels(image_shape: tuple[int, int, int]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Kernel sizes of the four stride-2 layers and of the final 'VALID' layer.

    One camera (H == W): 5, 3, 3, 3 then (H/16, W/16) (4x4 for 64x64, as the reference).
    Two cameras (H == 2W): the same kernels twice as tall, e.g. (10,5), (6,3), (6,3), (6,3), (8,4).
    """
    supported_image_shape(image_shape)
    h, w, _ = image_shape
    r = h // w
    kernels = [(5 * r, 5), (3 * r, 3), (3 * r, 3), (3 * r, 3)]
    return kernels, (h // 16, w // 16)


class Encoder(nn.Module):
    """(N, 3, H, W) float in [0, 1] -> (N, 8*bd) features; leaky-ReLU after every layer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        bd = cfg.base_depth
        kernels, final = _conv_kernels(cfg.image_shape)
        chans = [3, bd, 2 * bd, 4 * bd, 8 * bd]
        layers: list[nn.Module] = []
        for i, k in enumerate(kernels):
            layers += [
                Conv2d(chans[i], chans[i + 1], k, stride=2, padding=((k[0] - 1) // 2, (k[1] - 1) // 2)),
                nn.LeakyReLU(cfg.leaky_relu_slope),
            ]
        layers += [Conv2d(8 * bd, 8 * bd, final), nn.LeakyReLU(cfg.leaky_relu_slope)]
        self.net = nn.Sequential(*layers)
        self.out_size = 8 * bd

    def forward(self, x: Tensor) -> Tensor:
        return run_stack(self.net, x).flatten(1)


class Decoder(nn.Module):
    """(N, z1+z2) -> (N, 3, H, W) per-pixel means; no output activation (as the reference)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        bd = cfg.base_depth
        kernels, final = _conv_kernels(cfg.image_shape)
        slope = cfg.leaky_relu_slope
        layers: list[nn.Module] = [
            ConvTranspose2d(cfg.latent1_size + cfg.latent2_size, 8 * bd, final),
            nn.LeakyReLU(slope),
        ]
        chans = [8 * bd, 4 * bd, 2 * bd, bd, 3]
        # Mirror of the encoder: (3r,3) x3 then (5r,5), each doubling H and W ('SAME', stride 2).
        for i, k in enumerate([kernels[1], kernels[2], kernels[3], kernels[0]]):
            pad = ((k[0] - 1) // 2, (k[1] - 1) // 2)
            out_pad = (2 + 2 * pad[0] - k[0], 2 + 2 * pad[1] - k[1])
            layers.append(ConvTranspose2d(chans[i], chans[i + 1], k, 2, pad, out_pad))
            if i < 3:
                layers.append(nn.LeakyReLU(slope))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return run_stack(self.net, z[:, :, None, None])


class MLP(nn.Module):
    """in -> hidden -> hidden -> out with leaky-ReLU between layers."""

    def __init__(self, in_size: int, hidden: int, out_size: int, slope: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_size, hidden), nn.LeakyReLU(slope),
            nn.Linear(hidden, hidden), nn.LeakyReLU(slope),
            nn.Linear(hidden, out_size),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class GaussianMLP(MLP):
    """Diagonal Gaussian conditional: returns (mean, std) with std = softplus(raw) + offset."""

    def __init__(self, in_size: int, hidden: int, latent: int, slope: float, std_offset: float):
        super().__init__(in_size, hidden, 2 * latent, slope)
        self.std_offset = std_offset

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        mean, raw = self.net(x).chunk(2, dim=-1)
        return mean, F.softplus(raw) + self.std_offset

    def from_first_layer(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The distribution given the first Linear layer's output h (pre-activation)."""
        mean, raw = self.net[1:](h).chunk(2, dim=-1)
        return mean, F.softplus(raw) + self.std_offset


@dataclass
class Posterior:
    """Posterior samples and distribution parameters of z1 and z2: (B, z) at one frame (the
    online filter's carry), or (B, L, z) over a whole trial (the batched filter's output)."""

    z1: Tensor  # sample
    z2: Tensor  # sample (the GRU state when z2_transition == "gru")
    z1_mean: Tensor
    z1_std: Tensor
    z2_mean: Tensor
    z2_std: Tensor

    def belief(self) -> Tensor:
        """(..., 2*(z1+z2)): the actor/critic input [z1 mean, z1 std, z2 mean, z2 std]."""
        return torch.cat([self.z1_mean, self.z1_std, self.z2_mean, self.z2_std], dim=-1)


class LatentModel(nn.Module):
    """The MELD model; see the module docstring. `amp` is a context factory for the convolutions."""

    def __init__(self, cfg: ModelConfig, action_dim: int):
        super().__init__()
        if action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        self.cfg = cfg
        self.action_dim = action_dim
        z1, z2, h, a = cfg.latent1_size, cfg.latent2_size, cfg.hidden, action_dim
        slope, off = cfg.leaky_relu_slope, cfg.std_offset
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        feat = self.encoder.out_size + (cfg.reward_tile if cfg.reward_input != "none" else 0)
        self.feature_size = feat
        # p(z1_0) is a fixed N(0, I). q(z2_0 | z1_0) = p(z2_0 | z1_0): one network.
        self.z1_first_posterior = GaussianMLP(feat, h, z1, slope, off)
        self.z2_first = GaussianMLP(z1, h, z2, slope, off)
        self.z1_prior = GaussianMLP(z2 + a, h, z1, slope, off)
        self.z1_posterior = GaussianMLP(feat + z2 + a, h, z1, slope, off)
        self.gru = cfg.z2_transition == "gru"
        if self.gru:
            self.z2_step = nn.GRUCell(z1 + a, z2)
        else:
            # q(z2_t | z1_t, z2_{t-1}, a_{t-1}) = p(z2_t | ...): one network.
            self.z2_step = GaussianMLP(z1 + z2 + a, h, z2, slope, off)
        learned_std = cfg.reward_decoder_std is None
        self.reward_decoder = MLP(z1 + z2, h, 2 if learned_std else 1, slope)
        _init_tf_style(self)
        self.amp = contextlib.nullcontext  # replaced by the agent (bf16 autocast of the convolutions)

    # ----------------------------------------------------------------------------- features
    def images_to_input(self, images: Tensor) -> Tensor:
        """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1] (channels_last in memory)."""
        return images.permute(0, 3, 1, 2).float().div_(255.0)

    def encode(self, images: Tensor, rewards: Tensor | None, x: Tensor | None = None,
               encoder: nn.Module | None = None) -> Tensor:
        """uint8 images (..., H, W, 3) and rewards (...) -> posterior features (..., feature_size).

        `x` optionally passes the images already converted by `images_to_input` (flattened);
        `encoder` another copy of the encoder (e.g. one in bf16 for acting), in its own dtype.
        """
        lead = images.shape[:-3]
        if x is None:
            x = self.images_to_input(images.reshape(-1, *images.shape[-3:]))
        if encoder is not None:
            dtype = getattr(encoder, "dtype", None) or next(encoder.parameters()).dtype
            feats = encoder(x.to(dtype))
        else:
            with self.amp():
                feats = self.encoder(x)
        feats = feats.float().reshape(*lead, -1)
        if self.cfg.reward_input != "none":
            if rewards is None:
                raise ValueError("this model's posterior takes a reward (reward_input != 'none'): pass it")
            feats = torch.cat([feats, rewards.float()[..., None].expand(*lead, self.cfg.reward_tile)], dim=-1)
        return feats

    # ----------------------------------------------------------------------------- filtering
    def _step_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """Column blocks of the step networks' first layers that multiply the recurrent inputs."""
        f, z1, z2 = self.feature_size, self.cfg.latent1_size, self.cfg.latent2_size
        w1 = self.z1_posterior.net[0].weight  # (H, F + z2 + A) on [features_t, z2_{t-1}, a_{t-1}]
        if self.gru:  # the GRU cell takes its inputs whole
            return w1[:, f:f + z2], w1[:, :0], w1[:, :0]
        w2 = self.z2_step.net[0].weight  # (H, z1 + z2 + A) on [z1_t, z2_{t-1}, a_{t-1}]
        return w1[:, f:f + z2], w2[:, :z1], w2[:, z1:z1 + z2]

    def step_inputs(self, features: Tensor, prev_actions: Tensor) -> tuple[Tensor, Tensor]:
        """The parts of the step networks' first layers that do not depend on the recurrent state.

        features (..., F) of frame t and prev_actions (..., A) = a_{t-1} -> two (..., H) tensors,
        computed for every frame at once; the loop then only adds the z1/z2 terms (same maths as
        the networks applied to the concatenated inputs, far fewer small ops per step).
        """
        f, z1, z2 = self.feature_size, self.cfg.latent1_size, self.cfg.latent2_size
        l1 = self.z1_posterior.net[0]
        pre1 = F.linear(features, l1.weight[:, :f], l1.bias) + F.linear(prev_actions, l1.weight[:, f + z2:])
        if self.gru:  # the GRU's step input needs z1_t; pass the action through
            return pre1, prev_actions
        l2 = self.z2_step.net[0]
        pre2 = F.linear(prev_actions, l2.weight[:, z1 + z2:], l2.bias)
        return pre1, pre2

    def _first_step(self, features: Tensor, e1: Tensor, e2: Tensor) -> Posterior:
        m1, s1 = self.z1_first_posterior(features)
        z1 = m1 + s1 * e1
        m2, s2 = self.z2_first(z1)
        if self.gru:
            m2 = torch.tanh(m2)
            return Posterior(z1, m2, m1, s1, m2, torch.zeros_like(m2))
        return Posterior(z1, m2 + s2 * e2, m1, s1, m2, s2)

    def _next_step(self, pre1: Tensor, pre2: Tensor, prev_z2: Tensor, weights: tuple[Tensor, Tensor, Tensor],
                   e1: Tensor, e2: Tensor) -> Posterior:
        w1_z2, w2_z1, w2_z2 = weights
        m1, s1 = self.z1_posterior.from_first_layer(pre1 + F.linear(prev_z2, w1_z2))
        z1 = m1 + s1 * e1
        if self.gru:  # pre2 is a_{t-1} here
            z2 = self.z2_step(torch.cat([z1, pre2], dim=-1), prev_z2)
            return Posterior(z1, z2, m1, s1, z2, torch.zeros_like(z2))
        m2, s2 = self.z2_step.from_first_layer(pre2 + F.linear(z1, w2_z1) + F.linear(prev_z2, w2_z2))
        return Posterior(z1, m2 + s2 * e2, m1, s1, m2, s2)

    def filter_step(
        self,
        features: Tensor,
        prev: Posterior | None,
        prev_action: Tensor | None,
        noise: tuple[Tensor, Tensor] | None = None,
    ) -> Posterior:
        """One posterior step (the online filter). `prev=None`: the trial's first frame.

        features (B, F); prev_action (B, A) is the action taken at the previous frame; noise
        (eps1 (B, z1), eps2 (B, z2)) fixes the samples (standard normal draws when None).
        """
        b = features.shape[0]
        if noise is None:
            noise = (features.new_empty(b, self.cfg.latent1_size).normal_(),
                     features.new_empty(b, self.cfg.latent2_size).normal_())
        if prev is None:
            return self._first_step(features, *noise)
        if prev_action is None:
            raise ValueError("filter_step needs prev_action after the first frame of a trial")
        pre1, pre2 = self.step_inputs(features, prev_action)
        return self._next_step(pre1, pre2, prev.z2, self._step_weights(), *noise)

    def filter(
        self, features: Tensor, actions: Tensor, noise: tuple[Tensor, Tensor] | None = None
    ) -> Posterior:
        """Posterior over whole trials: features (B, L, F), actions (B, L, A) -> (B, L, ...).

        Frame 0 uses the first-step networks; every later frame t the step networks with the z2
        sample of frame t-1 and the action a_{t-1}. The trial's last action is not used.
        """
        b, length = features.shape[:2]
        if noise is None:
            noise = (features.new_empty(b, length, self.cfg.latent1_size).normal_(),
                     features.new_empty(b, length, self.cfg.latent2_size).normal_())
        return self.unroll(features, actions, *noise)

    def unroll(self, features: Tensor, actions: Tensor, eps1: Tensor, eps2: Tensor) -> Posterior:
        """`filter` with its noise given: the loop over the frames (what `compile_filter` compiles)."""
        length = features.shape[1]
        e1, e2 = eps1.unbind(1), eps2.unbind(1)
        state = self._first_step(features[:, 0], e1[0], e2[0])
        steps = [state]
        if length > 1:
            pre1, pre2 = self.step_inputs(features[:, 1:], actions[:, :-1])  # (B, L-1, H) each
            pre1, pre2 = pre1.unbind(1), pre2.unbind(1)
            weights = self._step_weights()
            for t in range(1, length):
                state = self._next_step(pre1[t - 1], pre2[t - 1], state.z2, weights, e1[t], e2[t])
                steps.append(state)
        return Posterior(
            *(torch.stack([getattr(s, k) for s in steps], dim=1)
              for k in ("z1", "z2", "z1_mean", "z1_std", "z2_mean", "z2_std"))
        )

    def compile_filter(self, mode: str | None = None) -> None:
        """torch.compile the trial loop (`unroll`): one fused graph instead of ~20 small ops per frame
        and direction; on CUDA `mode="reduce-overhead"` replays it as a CUDA graph. The noise is drawn
        outside, so a compiled filter gives the eager numbers (up to the order of float sums). The
        first step of each batch shape compiles (tens of seconds)."""
        self.unroll = torch.compile(self.unroll, mode=mode, dynamic=False)

    # ----------------------------------------------------------------------------- decoders
    def reward_distribution(self, z1: Tensor, z2: Tensor) -> Normal:
        out = self.reward_decoder(torch.cat([z1, z2], dim=-1))
        if self.cfg.reward_decoder_std is None:
            return Normal(out[..., 0], F.softplus(out[..., 1]) + self.cfg.std_offset, validate_args=False)
        std = torch.full_like(out[..., 0], self.cfg.reward_decoder_std)
        return Normal(out[..., 0], std, validate_args=False)

    def decode(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Posterior samples (N, z1), (N, z2) -> image means (N, 3, H, W), float32."""
        with self.amp():
            out = self.decoder(torch.cat([z1, z2], dim=-1))
        return out.float()

    # ----------------------------------------------------------------------------- loss
    def select_rewards(self, dense: Tensor, sparse: Tensor, which: str) -> Tensor | None:
        return {"dense": dense, "sparse": sparse, "none": None}[which]

    def elbo(
        self,
        images: Tensor,
        actions: Tensor,
        dense: Tensor,
        sparse: Tensor,
        noise: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative ELBO of trials. images uint8 (B, L, H, W, 3); actions (B, L, A); rewards (B, L).

        Returns (loss, metrics); metrics are detached scalars.
        """
        b, length = images.shape[:2]
        target = self.images_to_input(images.reshape(b * length, *images.shape[2:]))
        feats = self.encode(images, self.select_rewards(dense, sparse, self.cfg.reward_input), target)
        post = self.filter(feats, actions, noise)

        # KL(q(z1_t) || p(z1_t)): N(0, I) at t=0, p(z1_t | z2_{t-1} sample, a_{t-1}) after; batched.
        prior_m0 = torch.zeros_like(post.z1_mean[:, :1])
        if length > 1:
            pm, ps = self.z1_prior(torch.cat([post.z2[:, :-1], actions[:, :-1]], dim=-1))
            prior_mean = torch.cat([prior_m0, pm], dim=1)
            prior_std = torch.cat([torch.ones_like(prior_m0), ps], dim=1)
        else:
            prior_mean, prior_std = prior_m0, torch.ones_like(prior_m0)
        q = Normal(post.z1_mean, post.z1_std, validate_args=False)
        kl = kl_divergence(q, Normal(prior_mean, prior_std, validate_args=False)).sum(-1)  # (B, L)

        # Image likelihood: one decoder pass over every frame, summed over pixels.
        mean_img = self.decode(post.z1.reshape(b * length, -1), post.z2.reshape(b * length, -1))
        log_lik = fixed_std_normal_log_prob(mean_img, self.cfg.decoder_std, target).view(b, length)

        reward_target = self.select_rewards(dense, sparse, self.cfg.reward_target)
        reward_dist = self.reward_distribution(post.z1, post.z2)
        reward_log_lik = reward_dist.log_prob(reward_target.float())  # (B, L)

        elbo = log_lik.mean(1) - kl.mean(1) + self.cfg.reward_loss_weight * reward_log_lik.mean(1)
        loss = -elbo.mean()
        with torch.no_grad():
            metrics = {
                "elbo": elbo.mean(),
                "log_likelihood": log_lik.mean(),
                "reconstruction_error": (mean_img - target).square().mean(),
                "kl_divergence": kl.mean(),
                "reward_log_likelihood": reward_log_lik.mean(),
                "reward_error": (reward_dist.mean - reward_target).abs().mean(),
                "model_loss": loss.detach(),
            }
        return loss, metrics

    def beliefs(self, images: Tensor, actions: Tensor, dense: Tensor, sparse: Tensor) -> Tensor:
        """Posterior beliefs (B, L, 2*(z1+z2)) over whole trials, without gradient."""
        with torch.no_grad():
            feats = self.encode(images, self.select_rewards(dense, sparse, self.cfg.reward_input))
            return self.filter(feats, actions).belief()

    def parameter_groups(self) -> Iterator[tuple[str, nn.Module]]:
        yield "encoder", self.encoder
        yield "decoder", self.decoder
        yield "latent", nn.ModuleList(
            [self.z1_first_posterior, self.z2_first, self.z1_prior, self.z1_posterior, self.z2_step]
        )
        yield "reward_decoder", self.reward_decoder


def fixed_std_normal_log_prob(mean: Tensor, std: float, target: Tensor) -> Tensor:
    """sum over (C, H, W) of log N(target; mean, std^2) with one scalar std: (N, C, H, W) -> (N,).

    The same density as `Normal(mean, std).log_prob(target).sum((1, 2, 3))` (a test checks it),
    without materialising a per-pixel std tensor and its log (a third of the loss time on CPU).
    """
    sq = (target - mean).square_().sum(dim=(1, 2, 3))
    n = mean[0].numel()
    return sq * (-0.5 / std**2) - n * (math.log(std) + 0.5 * math.log(2 * math.pi))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_parameter_counts(model: LatentModel) -> dict[str, int]:
    """Parameter counts per part of the model (for logs and the parameter-count helper)."""
    counts = {name: count_parameters(m) for name, m in model.parameter_groups()}
    counts["model_total"] = count_parameters(model)
    return counts

