"""`MeldAgent`: the latent state model and SAC together, with the online belief filter.

Control loop (one call per frame, at the control rate)::

    agent.reset_belief()                       # start of a trial only
    for episode in trial:
        obs = env.reset()
        a = agent.act(obs.image, 0.0, episode_start=True)
        for t in range(T):
            obs = env.step(a)
            a = agent.act(obs.image, reward_of(obs), episode_start=False)
        # the last `a` is the boundary action: stored in replay, not executed

The filter does one posterior step per frame: the trial's first frame uses the first-step
networks; every later frame (the reset frame of a later episode included) uses the step networks
with the previous z2 sample and the previous action, exactly as the model is trained on trials.

Learning: `update_model(batch)` is one Adam step on the negative ELBO of a model batch;
`update_actor_critic(batch)` recomputes the posterior beliefs of a trial pool without gradient
(reference: fresh every AC step, never cached), draws `batch_size` transitions i -> i+1 with
replacement among those that do not cross an episode boundary (all of them with
`SACConfig.td_across_resets`), and does one SAC step. Actor-critic losses never reach the model.
With `SACConfig.reward_memory` the actor and critic see the belief and a trial-level memory (z1's mean
at the trial's latest rewarded frame, and a flag), in act() and in the AC batches alike
(`policy_inputs`).

Precision: learner convolutions run under bf16 autocast on CPU (`DeviceConfig.cpu_bf16`) and on
CUDA (`cuda_amp`). `act()` runs its encoder in bf16 where the CPU has native bf16
(`DeviceConfig.act_bf16`; half the time of fp32 per frame at batch 1 there, while autocast's per-call
weight casts made it slower than fp32), its weights packed once for oneDNN (`PackedStack`: half
again), the filter and the policy in fp32.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from meld_core.algo.conv import PackedStack
from meld_core.algo.model import LatentModel, Posterior, count_parameters, model_parameter_counts
from meld_core.algo.replay import TorchTrialBatch, TrialBatch
from meld_core.algo.runtime import cache_freed_memory
from meld_core.algo.sac import SAC, Transitions
from meld_core.config import DeviceConfig, ModelConfig, SACConfig

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The requested torch device does not exist on this machine."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}); "
                          "use --device cpu or --device auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                          "device(s); use --device cuda (the first) or --device auto")
    return device


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class Agent(Protocol):
    """What the training loop, rollouts and evaluation need from an agent (`MeldAgent` is one)."""

    def reset_belief(self) -> None:
        """Start of a trial: the next frame is filtered from a fresh belief."""

    def act(self, image: np.ndarray, reward: float, *, episode_start: bool, deterministic: bool = False,
            prev_action: np.ndarray | None = None) -> np.ndarray:
        """Filter one frame (with the reward of the transition into it) and return an action in [-1, 1]."""

    def predicted_reward(self) -> tuple[float, float]:
        """The reward decoder's (mean, std) at the current belief (for plots)."""

    def update_model(self, batch: TrialBatch) -> dict[str, float]:
        """One gradient step of the latent model; returns scalar metrics."""

    def update_actor_critic(self, batch: TrialBatch) -> dict[str, float]:
        """One gradient step of actor, critics and temperature; returns scalar metrics."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to restore the agent (weights, optimisers, RNG)."""

    def load_weights(self, state: dict[str, Any]) -> None:
        """Initialise the networks (model, actor, critics, targets, temperature) from another agent's
        `state_dict()`, e.g. a stage-1 run's, whose config may differ in what does not change a shape
        (the reward the posterior sees, learning rates, SAC options; an agent without the reward memory
        gives one with it zero weights on the memory inputs). Optimisers and RNG stay fresh."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class MeldAgent:
    """MELD agent: model + SAC + online filter. See the module docstring for the protocol."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        sac_cfg: SACConfig,
        action_dim: int,
        device: str | DeviceConfig = "cpu",
        seed: int = 0,
    ):
        self.model_cfg = model_cfg
        self.sac_cfg = sac_cfg
        self.action_dim = int(action_dim)
        self.device_cfg = DeviceConfig(device=device) if isinstance(device, str) else device
        self.device = resolve_device(self.device_cfg.device)
        cuda = self.device.type == "cuda"
        if self.device_cfg.num_threads is not None and not cuda:
            torch.set_num_threads(self.device_cfg.num_threads)
        if self.device_cfg.cpu_allocator_cache and not cuda:
            cache_freed_memory()
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        # Seeds the process-wide torch RNG (sampling in the filter and the policy draws from it).
        torch.manual_seed(seed)

        self._amp_dtype: torch.dtype | None = None
        if cuda and self.device_cfg.cuda_amp:
            if torch.cuda.is_bf16_supported():
                self._amp_dtype = torch.bfloat16
            else:
                log.warning("bf16 is not supported on %s; learner runs in fp32", self.device)
        elif not cuda:
            use_bf16 = self.device_cfg.cpu_bf16
            if use_bf16 is None:
                use_bf16 = cpu_has_native_bf16()
            if use_bf16:
                self._amp_dtype = torch.bfloat16
        self._amp_on = True
        act_bf16 = self.device_cfg.act_bf16
        self._act_bf16 = (not cuda and self._amp_dtype is not None) if act_bf16 is None else act_bf16
        self._act_encoder: nn.Module | None = None  # act()'s bf16 encoder (packed on CPU)
        self._weights_version = 0  # bumped whenever the networks change
        self._act_encoder_version = -1

        self.model = LatentModel(model_cfg, self.action_dim).to(self.device)
        if self.device_cfg.channels_last:
            self.model.encoder.to(memory_format=torch.channels_last)
            self.model.decoder.to(memory_format=torch.channels_last)
        self.model.amp = self._conv_amp
        if self.device_cfg.compile:
            self.model.compile_filter("reduce-overhead" if cuda else None)
        self.model_opt = torch.optim.Adam(self.model.parameters(), lr=model_cfg.lr, eps=model_cfg.adam_eps,
                                          fused=cuda)
        if sac_cfg.reward_memory is not None and model_cfg.reward_input == "none":
            raise ValueError("SACConfig.reward_memory needs a reward in the posterior "
                             "(reward_input != 'none')")
        self.memory_size = 0 if sac_cfg.reward_memory is None else model_cfg.latent1_size + 1
        self.sac = SAC(sac_cfg, model_cfg.belief_size + self.memory_size, self.action_dim, self.device)
        self._sampler = torch.Generator(device=self.device)
        self._sampler.manual_seed(seed + 1)
        self.model_updates = 0
        self.ac_updates = 0
        self._state: Posterior | None = None
        self._prev_action: torch.Tensor | None = None
        self._memory: torch.Tensor | None = None  # (1, memory_size) with reward_memory, else None

    # ------------------------------------------------------------------ precision
    @property
    def learner_precision(self) -> str:
        """dtype of the learner's convolutions: "bfloat16" (autocast) or "float32"."""
        return "bfloat16" if self._amp_dtype is not None else "float32"

    @contextlib.contextmanager
    def _conv_amp(self) -> Iterator[None]:
        if self._amp_dtype is None or not self._amp_on:
            yield
            return
        with torch.autocast(self.device.type, dtype=self._amp_dtype):
            yield

    @property
    def act_precision(self) -> str:
        """dtype of act()'s encoder: "bfloat16" (bf16 weights, packed on CPU) or "float32"."""
        return "bfloat16" if self._act_bf16 else "float32"

    def _acting_encoder(self) -> nn.Module | None:
        """act()'s encoder (None: the fp32 one): on CPU the bf16 weights packed once into oneDNN's layout
        (`PackedStack`, about 2x faster at batch 1 than a plain bf16 copy, which oneDNN reorders on
        every call), else a bf16 copy; refreshed after the weights changed (`reset_belief` does it
        between trials, so that a repack never lands inside a control tick)."""
        if not self._act_bf16:
            return None
        if self._act_encoder is None:
            if self.device.type == "cpu":
                hw = tuple(self.model_cfg.image_shape[:2])
                self._act_encoder = PackedStack.build(self.model.encoder.net, hw)
            if self._act_encoder is None:
                self._act_encoder = copy.deepcopy(self.model.encoder).to(torch.bfloat16).requires_grad_(False)
        elif self._act_encoder_version != self._weights_version:
            if isinstance(self._act_encoder, PackedStack):
                self._act_encoder.refresh()
            else:
                with torch.no_grad():
                    for mine, theirs in zip(self._act_encoder.parameters(), self.model.encoder.parameters()):
                        mine.copy_(theirs)
        self._act_encoder_version = self._weights_version
        return self._act_encoder

    @contextlib.contextmanager
    def _act_threads(self) -> Iterator[None]:
        """act() on `DeviceConfig.actor_threads` CPU threads: at batch 1 a second thread saves little,
        and on a busy machine its barrier waits cost more (25x the CPU time of a small model's act())."""
        previous = torch.get_num_threads()
        if self.device.type != "cpu" or previous == self.device_cfg.actor_threads:
            yield
            return
        torch.set_num_threads(self.device_cfg.actor_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    @contextlib.contextmanager
    def _fp32(self) -> Iterator[None]:
        previous, self._amp_on = self._amp_on, False
        try:
            yield
        finally:
            self._amp_on = previous

    # ------------------------------------------------------------------ online filter
    def reset_belief(self) -> None:
        """Forget the belief: the next frame is the first frame of a new trial."""
        self._state = None
        self._prev_action = None
        self._memory = None
        if self._act_encoder is not None:  # an agent that acts: repack now if the weights changed, not
            self._acting_encoder()  # in the next tick (one that never acted, e.g. a learner, builds none)

    def save_belief(self) -> tuple[Posterior | None, torch.Tensor | None, torch.Tensor | None]:
        """The online filter's state (the belief, the action act() last returned and the reward memory),
        to come back to with `restore_belief`: several continuations of a trial from one belief
        (diagnostics)."""
        return self._state, self._prev_action, self._memory

    def restore_belief(self, saved: tuple[Posterior | None, torch.Tensor | None, torch.Tensor | None],
                       ) -> None:
        """Go back to a state `save_belief` returned (the filter never changes a state in place)."""
        self._state, self._prev_action, self._memory = saved

    def observe(
        self,
        image: np.ndarray,
        reward: float,
        *,
        episode_start: bool,
        prev_action: np.ndarray | None = None,
        noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> np.ndarray:
        """One posterior step on a new frame; returns the belief.

        `prev_action` overrides the action taken at the previous frame (default: the last action
        `act()` returned); `noise` = (eps1 (1, z1), eps2 (1, z2)) fixes the posterior samples.
        """
        expected = tuple(self.model_cfg.image_shape)
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != expected:
            got = (getattr(image, "dtype", type(image).__name__), getattr(image, "shape", None))
            raise ValueError(f"image must be uint8 with shape {expected}, got {got}")
        reward = float(reward)
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        if self._state is None and not episode_start:
            raise RuntimeError(
                "the belief was reset but this frame is not an episode start; call reset_belief() only at "
                "the start of a trial, then pass episode_start=True"
            )
        with torch.inference_mode(), self._fp32():
            img = torch.from_numpy(image).to(self.device)[None]
            rew = None
            if self.model_cfg.reward_input != "none":
                rew = torch.tensor([reward], device=self.device)
            feats = self.model.encode(img, rew, encoder=self._acting_encoder())
            a_prev = None
            if self._state is not None:
                if prev_action is not None:
                    a_prev = torch.as_tensor(prev_action, dtype=torch.float32, device=self.device)
                    a_prev = a_prev.reshape(1, -1)
                elif self._prev_action is not None:
                    a_prev = self._prev_action
                else:
                    raise RuntimeError("no previous action: call act() on every frame, or pass prev_action")
            self._state = self.model.filter_step(feats, self._state, a_prev, noise)
            self._prev_action = None
            if self.memory_size:
                if self._memory is None:
                    self._memory = torch.zeros(1, self.memory_size, device=self.device)
                if reward >= self.sac_cfg.reward_memory:
                    flag = torch.ones(1, 1, device=self.device)
                    self._memory = torch.cat([self._state.z1_mean.float(), flag], dim=-1)
        return self.belief()

    def act(
        self, image: np.ndarray, reward: float, *, episode_start: bool, deterministic: bool = False,
        prev_action: np.ndarray | None = None,
    ) -> np.ndarray:
        """Filter the new frame, then return the policy's action (A,) float32 in [-1, 1].

        `reward` is the reward of the transition into this frame as the posterior should see it
        (dense or sparse per `ModelConfig.reward_input`; 0 on reset frames; ignored for "none").
        Sampled by default (the reference samples during evaluation too); `deterministic` takes tanh(mean).
        `prev_action` is the action actually executed at the previous frame when it was not the one
        `act()` returned (another controller drove, or the action was changed on its way).
        """
        with self._act_threads():
            self.observe(image, reward, episode_start=episode_start, prev_action=prev_action)
            assert self._state is not None
            with torch.inference_mode():
                action = self.sac.actor(self._policy_input(), deterministic=deterministic)
        self._prev_action = action
        return action[0].float().cpu().numpy()

    def belief(self) -> np.ndarray:
        """The model's belief at the current frame: [z1 mean, z1 std, z2 mean, z2 std]."""
        if self._state is None:
            raise RuntimeError("no belief yet: call act() (or observe()) on a frame first")
        return self._state.belief()[0].float().cpu().numpy()

    def policy_input(self) -> np.ndarray:
        """The actor's and critic's input at the current frame: the belief, then the reward memory
        (`SACConfig.reward_memory`; none by default)."""
        return self._policy_input()[0].float().cpu().numpy()

    def _policy_input(self) -> torch.Tensor:
        if self._state is None:
            raise RuntimeError("no belief yet: call act() (or observe()) on a frame first")
        belief = self._state.belief()
        return belief if self._memory is None else torch.cat([belief, self._memory.to(belief.dtype)], dim=-1)

    def predicted_reward(self) -> tuple[float, float]:
        """Reward decoder (mean, std) at the filter's current posterior sample (z1, z2)."""
        if self._state is None:
            raise RuntimeError("no belief yet: call act() (or observe()) on a frame first")
        with torch.inference_mode():
            dist = self.model.reward_distribution(self._state.z1, self._state.z2)
            return float(dist.mean[0]), float(dist.stddev[0])

    # ------------------------------------------------------------------ learning
    def _to_torch(self, batch: TrialBatch | TorchTrialBatch) -> TorchTrialBatch:
        if isinstance(batch, TrialBatch):
            if tuple(batch.images.shape[2:]) != tuple(self.model_cfg.image_shape):
                raise ValueError(f"batch images are {batch.images.shape[2:]}, model expects "
                                 f"{self.model_cfg.image_shape}")
            return batch.to_torch(self.device)
        return batch

    def update_model(self, batch: TrialBatch | TorchTrialBatch) -> dict[str, float]:
        """One gradient step on the negative ELBO of `batch`; returns the model metrics."""
        tb = self._to_torch(batch)
        self._graph_step()
        loss, metrics = self.model.elbo(tb.images, tb.actions, tb.dense, tb.sparse)
        self.model_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.model_cfg.grad_clip is not None:
            params = self.model.parameters()
            metrics["model_grad_norm"] = nn.utils.clip_grad_norm_(params, self.model_cfg.grad_clip)
        self.model_opt.step()
        self.model_updates += 1
        self._weights_version += 1
        return _to_floats(metrics)

    def _graph_step(self) -> None:
        """A compiled filter replayed as CUDA graphs: a new gradient step starts (the outputs of the last
        replays are no longer read), as torch.compile's "reduce-overhead" mode asks to be told."""
        if self.device_cfg.compile and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()

    def ac_transitions(self, tb: TorchTrialBatch) -> Transitions:
        """Beliefs of the trial pool (no gradient) and `batch_size` valid transitions drawn from it."""
        with torch.no_grad():
            beliefs = self.policy_inputs(tb, self.model.beliefs(tb.images, tb.actions, tb.dense, tb.sparse))
            b, length = beliefs.shape[:2]
            if length < 2:
                raise ValueError("AC batches need trials of at least 2 frames")
            if self.sac_cfg.td_across_resets:  # every i -> i+1 of the trial, resets included
                valid = torch.ones_like(tb.episode_start[:, 1:])
            else:  # transition i -> i+1 stays inside an episode
                valid = ~tb.episode_start[:, 1:]
            idx = torch.multinomial(valid.reshape(-1).float(), self.sac_cfg.batch_size, replacement=True,
                                    generator=self._sampler)
            bi, ti = idx // (length - 1), idx % (length - 1)
            rewards = self._td_rewards(tb)  # (B, L - 1): the TD reward of each transition i -> i+1
            actions = tb.actions[bi, ti].float()
            n = self.sac_cfg.n_step
            if n == 1:
                return Transitions(beliefs[bi, ti], actions, rewards[bi, ti], beliefs[bi, ti + 1])
            # m = the steps the target may take from i: n, or fewer before the trial's end (or the episode's)
            left = length - 1 - ti
            if not self.sac_cfg.td_across_resets:  # transitions into a reset frame are not valid
                after = torch.arange(length, device=ti.device)[None, :] > ti[:, None]
                resets = tb.episode_start[bi] & after
                next_reset = torch.where(resets.any(1), resets.float().argmax(1), torch.full_like(ti, length))
                left = torch.minimum(left, next_reset - 1 - ti)
            m = left.clamp(max=n)
            k = torch.arange(n, device=ti.device)
            steps = (ti[:, None] + k).clamp(max=length - 2)
            powers = self.sac_cfg.gamma ** k.to(rewards.dtype)
            summed = (rewards[bi[:, None], steps] * powers * (k < m[:, None])).sum(1)
            discount = self.sac_cfg.gamma ** m.to(rewards.dtype)
            return Transitions(beliefs[bi, ti], actions, summed, beliefs[bi, ti + m], discount)

    def policy_inputs(self, tb: TorchTrialBatch, beliefs: torch.Tensor) -> torch.Tensor:
        """The actor's and critic's input at every frame of the trials, (B, L, D + memory_size): the
        beliefs, then (with `reward_memory`) z1's mean at the latest frame so far whose posterior reward
        input reached the threshold, and a flag; zeros before any. The same as act() builds online."""
        if not self.memory_size:
            return beliefs
        rewards = self.model.select_rewards(tb.dense, tb.sparse, self.model_cfg.reward_input)
        length = beliefs.shape[1]
        frames = torch.arange(length, device=beliefs.device).expand_as(rewards)
        hit = torch.where(rewards.float() >= self.sac_cfg.reward_memory, frames, torch.full_like(frames, -1))
        latest = torch.cummax(hit, dim=1).values  # (B, L): the latest rewarded frame so far, or -1
        z1 = self.model_cfg.latent1_size
        seen = (latest >= 0)[..., None].to(beliefs.dtype)
        memory = torch.gather(beliefs[..., :z1], 1, latest.clamp(min=0)[..., None].expand(-1, -1, z1)) * seen
        return torch.cat([beliefs, memory, seen], dim=-1)

    def _td_rewards(self, tb: TorchTrialBatch) -> torch.Tensor:
        """The critic's reward of every transition i -> i+1 of the trials, (B, L - 1), fp32: frame i's or
        i+1's (`td_reward`), dense and sparse weighted (`td_dense_weight`, per episode of the trial with
        `td_dense_weight_later`)."""
        frames = slice(0, -1) if self.sac_cfg.td_reward == "current" else slice(1, None)
        rewards = tb.dense[:, frames].float()
        later = self.sac_cfg.td_dense_weight_later
        if later is not None and later != self.sac_cfg.td_dense_weight:  # per episode of the trial
            first = torch.cumsum(tb.episode_start.long(), dim=1)[:, frames] <= 1
            rewards = torch.where(first, self.sac_cfg.td_dense_weight, later) * rewards
        elif self.sac_cfg.td_dense_weight != 1.0:
            rewards = self.sac_cfg.td_dense_weight * rewards
        if self.sac_cfg.td_sparse_weight:
            rewards = rewards + self.sac_cfg.td_sparse_weight * tb.sparse[:, frames].float()
        return rewards

    def update_actor_critic(self, batch: TrialBatch | TorchTrialBatch) -> dict[str, float]:
        """One SAC step on transitions drawn from `batch` (a trial pool); the model is untouched."""
        self._graph_step()
        transitions = self.ac_transitions(self._to_torch(batch))
        metrics = self.sac.update(transitions)
        self.ac_updates += 1
        return _to_floats(metrics)

    # ------------------------------------------------------------------ bookkeeping
    def num_parameters(self) -> dict[str, int]:
        counts = model_parameter_counts(self.model)
        counts["actor"] = count_parameters(self.sac.actor)
        counts["critic"] = count_parameters(self.sac.critic)
        counts["total"] = counts["model_total"] + counts["actor"] + counts["critic"] + 1
        return counts

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers, RNG states and counters (torch.save-able)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "sampler": self._sampler.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "config": {"model": dataclasses.asdict(self.model_cfg), "sac": dataclasses.asdict(self.sac_cfg),
                       "action_dim": self.action_dim},
            "model": self.model.state_dict(),
            "sac": self.sac.state_dict(),
            "model_opt": self.model_opt.state_dict(),
            **{name: opt.state_dict() for name, opt in self.sac.optimizers().items()},
            "counters": {"model_updates": self.model_updates, "ac_updates": self.ac_updates},
            "rng": rng,
        }

    def load_weights(self, state: dict[str, Any]) -> None:
        """Initialise the networks (model, actor, critics, targets, temperature) from another agent's
        `state_dict()`, e.g. a stage-1 run's, whose config may differ in what does not change a shape
        (the reward the posterior sees, learning rates, SAC options; an agent without the reward memory
        gives one with it zero weights on the memory inputs). Optimisers and RNG stay fresh."""
        try:
            self.model.load_state_dict(state["model"])
            self.sac.load_state_dict(self._with_memory_columns(state["sac"]))
        except RuntimeError as exc:  # missing keys or shape mismatches
            raise ValueError(f"the checkpoint's networks do not fit this agent ({exc})") from None
        self._weights_version += 1
        self.reset_belief()

    def _with_memory_columns(self, sac_state: dict[str, Any]) -> dict[str, Any]:
        """SAC weights of an agent without the reward memory, widened for this one's: zero columns for
        the memory inputs in the first layers of the actor and critics (between the belief and the
        action), so the networks start as the source's, the memory ignored until training uses it."""
        belief = self.model_cfg.belief_size
        critics = (f"{c}.{q}.0.weight" for c in ("critic", "target_critic") for q in ("q1", "q2"))
        first = ["actor.net.0.weight", *critics]
        if not self.memory_size or any(name not in sac_state for name in first) \
                or sac_state["actor.net.0.weight"].shape[1] != belief:
            return sac_state  # this agent's own shapes, or a mismatch load_state_dict reports
        out = dict(sac_state)
        for name in first:
            w = sac_state[name]
            zeros = w.new_zeros(w.shape[0], self.memory_size)
            out[name] = torch.cat([w[:, :belief], zeros, w[:, belief:]], dim=1)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore everything `state_dict` saved; the belief is reset. An exported policy
        (`weights_only`: networks and config, see meld_core.data.policy_export) restores the networks."""
        cfg = state["config"]
        mine = {"model": dataclasses.asdict(self.model_cfg), "sac": dataclasses.asdict(self.sac_cfg),
                "action_dim": self.action_dim}
        if _normalise(cfg["model"]) != _normalise(mine["model"]) or cfg["action_dim"] != self.action_dim:
            raise ValueError("checkpoint was saved with a different model config or action_dim; build the "
                             f"agent from the checkpoint's config: {cfg}")
        if state.get("weights_only"):
            self.load_weights(state)
            return
        self.model.load_state_dict(state["model"])
        self.sac.load_state_dict(state["sac"])
        self._weights_version += 1
        self.model_opt.load_state_dict(state["model_opt"])
        for name, opt in self.sac.optimizers().items():
            opt.load_state_dict(state[name])
        self.model_updates = int(state["counters"]["model_updates"])
        self.ac_updates = int(state["counters"]["ac_updates"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        self._sampler.set_state(state["rng"]["sampler"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        self.reset_belief()


def _normalise(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _normalise(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_normalise(v) for v in d]
    return d


def _to_floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """One device sync for all metrics."""
    names = list(metrics)
    values = torch.stack([metrics[k].detach().float().reshape(()) for k in names]).tolist()
    return dict(zip(names, values))
