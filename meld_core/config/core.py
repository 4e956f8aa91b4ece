"""Configuration dataclasses: one frozen dataclass per component, documented field by field.

Defaults are the runnable settings of the MELD reference code (the `2_*` experiment files; see
github.com/tonyzhaozh/meld, `meld/configs/`). Every dataclass round-trips through YAML:
`dataclasses.asdict(cfg)` gives plain data and `config_from_dict(cls, d)` rebuilds it (nested
dataclasses and tuples included), rejecting unknown keys and values of the wrong type with the
field's name. `RunConfig.with_overrides` sets dotted keys (`sac.batch_size`) the same way: that is
what `meld train --sac.batch_size=128` and a run config file do.

Owners: ModelConfig, SACConfig, ReplayConfig, DeviceConfig and `config_from_dict` (core);
training configuration and presets are appended at the end of this file (trainer).

Over 500 lines on purpose: every setting of a run, with its validation, in one file that a user can
read top to bottom (the `--SECTION.FIELD` flags and config.yaml are generated from it).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REWARD_INPUTS = ("dense", "sparse", "none")
REWARD_TARGETS = ("dense", "sparse")
Z2_TRANSITIONS = ("stochastic", "gru")
TD_REWARD_FRAMES = ("current", "next")


def supported_image_shape(image_shape: tuple[int, int, int]) -> None:
    """Raise ValueError unless the encoder/decoder can handle `image_shape` = (H, W, 3).

    Supported: H and W multiples of 16 with H == W (one camera, square kernels as the reference's
    64x64 encoder) or H == 2 * W (two cameras stacked vertically, the reference's tall kernels), e.g.
    (64, 64, 3), (128, 64, 3), (32, 32, 3), (64, 32, 3), (16, 16, 3).
    """
    if len(image_shape) != 3 or image_shape[2] != 3:
        raise ValueError(f"image_shape must be (H, W, 3), got {image_shape}")
    h, w, _ = image_shape
    if h % 16 or w % 16 or h < 16 or w < 16 or h not in (w, 2 * w):
        raise ValueError(
            f"unsupported image_shape {tuple(image_shape)}: H and W must be multiples of 16 with H == W "
            "(one camera, e.g. (64, 64, 3)) or H == 2*W (two cameras stacked, e.g. (128, 64, 3)); "
            "resize the camera images to such a shape"
        )


@dataclass(frozen=True)
class ModelConfig:
    """Latent state model (encoder, decoder, reward decoder, priors and posteriors, ELBO).

    Deliberate differences from the reference: the loss is not divided by num_tasks_per_train
    (a constant factor, cosmetic under Adam); conv 'SAME' padding is symmetric (TF pads the extra
    row/column at the end), which changes no shape.
    """

    image_shape: tuple[int, int, int] = (128, 64, 3)  # (H, W, C); two 64x64 cameras stacked: scene on top
    latent1_size: int = 64  # z1 size (reference 2_* files: 64; shelf 128)
    latent2_size: int = 32  # z2 size (reference 2_* files: 32; shelf 64)
    base_depth: int = 64  # conv filter unit bd: encoder bd,2bd,4bd,8bd,8bd; features 8*bd
    hidden_size: int | None = None  # hidden units of every latent/reward MLP (2 layers); None -> 8*base_depth
    leaky_relu_slope: float = 0.2  # leaky-ReLU slope everywhere in the model (TF default 0.2)
    std_offset: float = 1e-5  # latent std = softplus(raw) + std_offset (no other clamp, as the reference)
    decoder_std: float = math.sqrt(0.1)  # fixed per-pixel std of the image likelihood
    reward_tile: int = 32  # the scalar reward is repeated this many times and appended to the features
    reward_input: str = "dense"  # reward the posterior sees: "dense", "sparse" or "none" (SLAC-like)
    reward_target: str = "dense"  # reward the reward decoder reconstructs: "dense" or "sparse"
    reward_decoder_std: float | None = 0.2  # fixed reward-likelihood std; None -> learned (softplus)
    reward_loss_weight: float = 10.0  # ELBO weight of the reward log-likelihood (Sawyer 10, cheetah 16)
    lr: float = 1e-4  # Adam learning rate of the whole model (encoder included)
    adam_eps: float = 1e-8  # Adam epsilon (tf.compat.v1.train.AdamOptimizer default)
    grad_clip: float | None = None  # global grad-norm clip; reference: none
    # How z2 moves between frames. "stochastic" (the reference, SLAC): z2_t is sampled from an MLP
    # Gaussian of (z1_t, z2_{t-1} sample, a_{t-1}). "gru": z2 is a deterministic recurrent state,
    # z2_t = GRUCell([z1_t, a_{t-1}], z2_{t-1}) (PlaNet/Dreamer's deterministic path). A documented
    # departure: with stochastic z2 the belief of the sparse point_nav task lost the goal found in
    # episode 1 before episode 2 (reward-prediction error in episode 2 stayed at the uninformed level
    # after 12 500 model steps); purely stochastic transitions are known to forget (PlaNet, sec. 3).
    z2_transition: str = "stochastic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_shape", tuple(int(x) for x in self.image_shape))
        supported_image_shape(self.image_shape)
        for name in ("latent1_size", "latent2_size", "base_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size is not None and self.hidden_size < 1:
            raise ValueError(f"ModelConfig.hidden_size must be >= 1 or None, got {self.hidden_size}")
        if self.reward_tile < 1:
            raise ValueError(f"ModelConfig.reward_tile must be >= 1, got {self.reward_tile}")
        if self.reward_input not in REWARD_INPUTS:
            raise ValueError(
                f"ModelConfig.reward_input must be one of {REWARD_INPUTS}, got {self.reward_input!r}"
            )
        if self.reward_target not in REWARD_TARGETS:
            raise ValueError(
                f"ModelConfig.reward_target must be one of {REWARD_TARGETS}, got {self.reward_target!r}"
            )
        for name in ("decoder_std", "lr", "adam_eps", "std_offset"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.reward_decoder_std is not None and not self.reward_decoder_std > 0:
            raise ValueError(
                f"ModelConfig.reward_decoder_std must be > 0 or None, got {self.reward_decoder_std}"
            )
        if self.reward_loss_weight < 0:
            raise ValueError(f"ModelConfig.reward_loss_weight must be >= 0, got {self.reward_loss_weight}")
        if self.z2_transition not in Z2_TRANSITIONS:
            raise ValueError(
                f"ModelConfig.z2_transition must be one of {Z2_TRANSITIONS}, got {self.z2_transition!r}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"ModelConfig.grad_clip must be > 0 or None, got {self.grad_clip}")
        if not 0 < self.leaky_relu_slope < 1:
            raise ValueError(f"ModelConfig.leaky_relu_slope must be in (0, 1), got {self.leaky_relu_slope}")

    @property
    def hidden(self) -> int:
        return self.hidden_size if self.hidden_size is not None else 8 * self.base_depth

    @property
    def feature_size(self) -> int:
        return 8 * self.base_depth

    @property
    def belief_size(self) -> int:
        """Size of the actor/critic input [z1 mean, z1 std, z2 mean, z2 std]."""
        return 2 * (self.latent1_size + self.latent2_size)


@dataclass(frozen=True)
class SACConfig:
    """Soft actor-critic on the belief (reference `train_eval` defaults; SLAC network details).

    Options off by default (the reference's behaviour), see their field comments: `td_across_resets`
    makes the critic's return the whole trial's instead of each episode's; `td_sparse_weight` adds
    the sparse reward to the dense one in the TD reward.

    Deliberate difference: `target_init_copy=True` copies the critics into their targets at start;
    the reference never does (its targets start from their own random init and Polyak towards the
    critics); set False to reproduce that.
    """

    actor_hidden: tuple[int, ...] = (512, 512)  # actor MLP (ReLU); reference: 512x2 peg/buttons, 256x2 others
    critic_hidden: tuple[int, ...] = (512, 512)  # each critic's joint MLP on [belief, action] (ReLU)
    actor_lr: float = 3e-4  # Adam learning rate of the actor
    critic_lr: float = 3e-4  # Adam learning rate of both critics
    alpha_lr: float = 3e-4  # Adam learning rate of log(alpha)
    adam_eps: float = 1e-8  # Adam epsilon (TF v1 default)
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics, applied every AC step
    initial_alpha: float = 1.0  # initial temperature (reference initial log alpha 0)
    target_entropy: float | None = None  # None -> -action_dim
    log_std_min: float = -20.0  # actor log-std clip (SLAC)
    log_std_max: float = 2.0  # actor log-std clip (SLAC)
    reward_scale: float = 1.0  # multiplies the TD reward
    td_loss_weight: float = 0.5  # critic loss = weight * MSE, summed over both critics
    batch_size: int = 512  # transitions per AC step (ac_bs_in_steps), drawn with replacement
    td_reward: str = "current"  # TD reward of i->i+1: "current" = frame i's (the reference), "next" = i+1's
    target_init_copy: bool = True  # copy critics into targets at start (reference: False, see docstring)
    # True: TD targets also cross the episode resets inside a trial (last frame -> next reset frame),
    # so the trial is one return and exploring in episode 1 is credited with what it earns in
    # episode 2. False (reference): transitions into a reset frame are excluded.
    td_across_resets: bool = False
    # TD reward = td_dense_weight x dense + td_sparse_weight x sparse (same frame). 1 and 0 (reference): the
    # dense reward only. td_sparse_weight > 0 adds the sparse task signal (e.g. "inside the goal circle").
    # td_dense_weight < 1 weakens the shaping where the goal is hidden: a critic that cannot tell which of
    # several goals is the task values the dense reward averaged over them: highest at the middle ones.
    td_dense_weight: float = 1.0
    # The dense weight in the episodes after the first of a trial (None: td_dense_weight). Episode 2
    # starts from a belief that has seen episode 1's rewards (or their absence at the ports it tried),
    # so there the shaping no longer averages over the goals the critic cannot tell apart: e.g. 0 in
    # episode 1 (search on the sparse reward) and 1 in episode 2 (go to the goal the belief points at).
    td_dense_weight_later: float | None = None
    td_sparse_weight: float = 0.0
    # n-step TD targets: r_i + g r_{i+1} + ... + g^(m-1) r_{i+m-1} + g^m V(b_{i+m}), m = min(n, frames left
    # in the trial, or in the episode without td_across_resets). 1 (reference): one-step targets. With a
    # sparse reward the one-step target moves a route's value back one frame per round of policy
    # improvement along it, so a route the policy does not take yet (an offline episode's, another
    # port's) is worth nothing to the critic for long; n steps of the replayed rewards carry it back n
    # frames at once. The rewards of those steps are the replayed actions' (no off-policy correction,
    # no entropy bonus inside the n steps), as in n-step DQN/D4PG.
    n_step: int = 1
    # A trial-level memory beside the belief (None, the reference: none). The actor and critic also see
    # z1's mean at the trial's latest frame whose posterior reward input was at least this value, and a
    # flag (0 until such a frame): where the plug was when the sparse reward came, held across the reset
    # to episode 2. The latent model's own belief does not keep the goal port across the reset (see
    # bench/route_values.py); this gives the policy the one fact episode 2 needs, from the agent's own
    # frames and rewards only. Needs a reward input (ModelConfig.reward_input != "none").
    reward_memory: float | None = None
    grad_clip: float | None = None  # global grad-norm clip for actor and critic; reference: none

    def __post_init__(self) -> None:
        object.__setattr__(self, "actor_hidden", tuple(int(x) for x in self.actor_hidden))
        object.__setattr__(self, "critic_hidden", tuple(int(x) for x in self.critic_hidden))
        for name in ("actor_hidden", "critic_hidden"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ValueError(f"SACConfig.{name} must be a non-empty tuple of positive ints")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "adam_eps", "initial_alpha", "reward_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SACConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"SACConfig.gamma must be in [0, 1], got {self.gamma}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"SACConfig.tau must be in (0, 1], got {self.tau}")
        if self.log_std_min >= self.log_std_max:
            raise ValueError("SACConfig.log_std_min must be < log_std_max")
        if self.batch_size < 1:
            raise ValueError(f"SACConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.td_reward not in TD_REWARD_FRAMES:
            raise ValueError(f"SACConfig.td_reward must be one of {TD_REWARD_FRAMES}, got {self.td_reward!r}")
        for name in ("td_dense_weight", "td_dense_weight_later", "td_sparse_weight"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"SACConfig.{name} must be >= 0, got {value}")
        if self.td_sparse_weight == 0 and (self.td_dense_weight == 0 or self.td_dense_weight_later == 0):
            raise ValueError("SACConfig: a dense weight and td_sparse_weight are both 0: no TD reward")
        if self.td_loss_weight <= 0:
            raise ValueError(f"SACConfig.td_loss_weight must be > 0, got {self.td_loss_weight}")
        if isinstance(self.n_step, bool) or not isinstance(self.n_step, int) or self.n_step < 1:
            raise ValueError(f"SACConfig.n_step must be an int >= 1, got {self.n_step!r}")
        if self.reward_memory is not None and not math.isfinite(self.reward_memory):
            raise ValueError(f"SACConfig.reward_memory must be finite or None, got {self.reward_memory}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"SACConfig.grad_clip must be > 0 or None, got {self.grad_clip}")


@dataclass(frozen=True)
class ReplayConfig:
    """Per-task episodic replay and how trial batches are formed (as the reference's run_meld.py)."""

    capacity_episodes_per_task: int = 10000  # newest episodes kept in memory per task (reference: 10 000)
    num_tasks_per_train: int = 20  # tasks drawn (uniformly, with replacement) per gradient step
    trials_per_task: int = 1  # trials per drawn task (train_trials_per_task)
    model_batch_frames: int = 512  # model_bs_in_steps: the model batch has this // trial_length trials
    offline_ratio: float = 0.3  # stage 2: probability that an episode slot is taken from offline data
    compress_on_disk: bool = True  # np.savez_compressed for episode files (images compress ~3-5x)
    fsync: bool = True  # fsync each episode file before the rename (crash-safe on power loss too)

    def __post_init__(self) -> None:
        names = ("capacity_episodes_per_task", "num_tasks_per_train", "trials_per_task", "model_batch_frames")
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"ReplayConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.offline_ratio <= 1:
            raise ValueError(f"ReplayConfig.offline_ratio must be in [0, 1], got {self.offline_ratio}")


DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class DeviceConfig:
    """Where and in which precision the networks run, and how a process uses the CPU cores.

    CPU: bf16 autocast is applied to the conv encoder/decoder only (the latent MLPs, KL and
    likelihoods stay fp32), by default only where the CPU computes bf16 natively (AVX512-BF16 or
    AMX): emulated bf16 on an AVX2-only CPU made a model step ~5-20x *slower* in our measurements.
    `act()` at batch 1 follows with bf16 encoder weights packed once for oneDNN (`act_bf16`). CUDA: bf16
    autocast (no grad scaler needed), TF32 matmuls, cudnn autotuning, pinned host memory with
    non-blocking copies.

    Async mode (TrainConfig.mode) runs an actor and a learner process side by side; `pin_cpus` gives
    the actor one core and the learner the others, so that their OpenMP threads never compete.
    """

    device: str = "auto"  # "cpu", "cuda" (or "cuda:N") or "auto" (cuda when available)
    channels_last: bool = True  # NHWC memory format for the conv encoder/decoder
    cpu_bf16: bool | None = None  # bf16 autocast of learner convs on CPU; None -> on iff native bf16
    cuda_amp: bool = True  # bf16 autocast on CUDA (falls back to fp32 where bf16 is unsupported)
    # act()'s encoder in bf16 (on CPU its weights packed once into oneDNN's layout: at batch 1 ~2x faster
    # than a plain bf16 copy, which is ~2x faster than fp32 with native bf16; autocast's per-call casts
    # were slower than fp32); None -> on CPU iff the learner's convs run bf16.
    act_bf16: bool | None = None
    num_threads: int | None = None  # torch threads on CPU (async: the learner's); None: one per usable core
    # Keep freed heap memory for reuse instead of returning every large tensor to the OS (glibc
    # mallopt): without it a reference-size model step spent ~15 % of its CPU time in page faults.
    cpu_allocator_cache: bool = True
    pin_cpus: bool = True  # async mode: actor on the first usable core, learner on the others (if >= 2)
    actor_threads: int = 1  # CPU threads of act() (batch 1), in both modes; async: the actor's cores
    # torch.compile the latent filter's loop over a trial (CUDA: as a CUDA graph). Each batch shape
    # compiles once (~30-90 s); pays on long runs where the small per-frame ops dominate (GPU).
    compile: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"DeviceConfig.device must be one of {DEVICES} or 'cuda:N', got {self.device!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"DeviceConfig.num_threads must be >= 1 or None, got {self.num_threads}")
        if self.actor_threads < 1:
            raise ValueError(f"DeviceConfig.actor_threads must be >= 1, got {self.actor_threads}")


def _type_name(tp: Any) -> str:
    """A type annotation as a person reads it: "int", "float or null", "list of int"."""
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return f"a mapping ({tp.__name__})"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    if origin in (dict, Mapping) or tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _value_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def _rebuild(tp: Any, value: Any, where: str) -> Any:
    """Rebuild `value` (plain YAML data) into the annotated type `tp`; ValueError naming `where` and
    the expected type when it does not fit (YAML reads `1e-3` as a string, `4.5` as a float, ...)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected {_type_name(tp)}, got {_value_text(value)}")
        return config_from_dict(tp, value, _where=where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _rebuild(arg, value, where)
            except ValueError:
                continue
        raise ValueError(f"{where}: expected {_type_name(tp)}, got {_value_text(value)}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected {_type_name(tp)}, got {_value_text(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_rebuild(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {_type_name(tp)}, got {len(value)} values {list(value)}")
        return tuple(_rebuild(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {_value_text(value)}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {_value_text(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected int, got {_value_text(value)}")
        return value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                hint = f" (YAML reads {value} as text: write it with a decimal point, e.g. 1.0e-3)"
            except ValueError:
                pass
        raise ValueError(f"{where}: expected float, got {_value_text(value)}{hint}")
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected str, got {_value_text(value)}")
        return value
    return value


def config_from_dict(cls: type, d: Mapping[str, Any] | None, *, _where: str | None = None) -> Any:
    """Build dataclass `cls` from `d` (e.g. `dataclasses.asdict` output loaded back from YAML).

    Nested dataclasses and tuples are rebuilt recursively; missing keys take their defaults. A
    value of the wrong type, an unknown key or a missing required key raises ValueError naming the
    field (`RunConfig.model.lr: expected float, got the string '1e-3'`); then the dataclass's own
    validation runs.
    """
    where = _where or cls.__name__
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"config_from_dict needs a dataclass type, got {cls!r}")
    if not isinstance(d, Mapping):
        empty = " (an empty file?)" if d is None else ""
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {_value_text(d)}{empty}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    missing = [name for name, f in fields.items() if name not in d
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    kwargs = {name: _rebuild(hints[name], value, f"{where}.{name}") for name, value in d.items()}
    return cls(**kwargs)


ABSENT = "<absent>"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: {"sac": {"gamma": 0.9}} -> {"sac.gamma": 0.9}."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every key whose values differ (`ABSENT` where a key is
    missing), top-level keys first."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb), key=lambda k: (k.count("."), k))
    return [(k, fa.get(k, ABSENT), fb.get(k, ABSENT)) for k in keys if fa.get(k, ABSENT) != fb.get(k, ABSENT)]


def format_diff(diff: list[tuple[str, Any, Any]], a: str, b: str, limit: int = 8) -> str:
    """`key: <a value> (a) vs <b value> (b); ...` for a one-line error message."""
    def text(v: Any) -> str:
        return ABSENT if v is ABSENT else repr(list(v)) if isinstance(v, tuple) else repr(v)

    parts = [f"{k}: {text(x)} ({a}) vs {text(y)} ({b})" for k, x, y in diff[:limit]]
    if len(diff) > limit:
        parts.append(f"and {len(diff) - limit} more")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Training configuration (owner: trainer). Presets live in meld_core/config/presets.py.
# ---------------------------------------------------------------------------------------------


TRAIN_MODES = ("alternate", "async")


@dataclass(frozen=True)
class TrainConfig:
    """The meta-training schedule (the reference's run_meld.py) and the run's side work.

    Iteration = collect one trial on a sampled train task, then int(env steps just collected x
    ratio) model and actor-critic gradient steps. Defaults are the reference's 2-episode sparse
    buttons numbers.
    """

    episodes_per_trial: int = 2  # E: episodes per trial, the belief carried across their resets
    init_collect_trials_per_task: int = 5  # random-policy trials per train task before learning
    init_model_train_ratio: float = 0.3  # model pre-training steps = ratio x warm-up env steps
    model_train_ratio: float = 0.8  # model steps per env step collected in an iteration
    ac_train_ratio: float = 0.5  # actor-critic steps per env step collected in an iteration
    tasks_to_collect_per_iter: int = 1  # train tasks (without replacement) visited per iteration
    num_iterations: int = 100_000  # iterations after warm-up and pre-training (the run's budget)
    stop_model_training_step: int | None = None  # freeze the model once global step reaches this; None: never
    eval_interval: int = 100  # evaluate every this many iterations (and at the end)
    eval_trials: int = 10  # trials per evaluation, on held-out tasks drawn without replacement (cycled)
    eval_deterministic: bool = True  # act with the policy mean when evaluating (reference samples: False)
    eval_at_start: bool = False  # evaluate the untrained policy first (the reference does)
    # Trials on train tasks (spread evenly over the list, the same ones each time) run at every
    # evaluation; the checkpoint whose last episode succeeds most often is kept as checkpoints/best.pt
    # (ties go to the newer). 0: no validation (the reference). Held-out tasks never pick checkpoints.
    validation_trials: int = 0
    video_trials: int = 2  # eval trials recorded as MP4 and reward-prediction plot
    checkpoint_interval: int = 25  # checkpoint every this many iterations (and at stop and end)
    keep_checkpoints: int = 3  # newest checkpoints kept on disk
    log_interval: int = 10  # write training scalars every this many iterations
    seed: int = 1  # seeds the trainer's task sampling, the warm-up policy and the agent
    # "alternate": Algorithm 1, collect a trial then train on it. "async": an actor process collects
    # while a learner process trains, meeting in the run directory (meld_core.train.async_mode); the
    # learner still takes ratio x env steps gradient steps per iteration, so runs stay comparable.
    mode: str = "alternate"
    async_lead: int = 1  # async: iterations the actor may collect before the learner has trained them
    async_publish_interval: int = 100  # async: the learner publishes weights every this many gradient steps
    async_timeout_s: float = 1800.0  # async: give up when the other process shows no sign of life this long

    def __post_init__(self) -> None:
        for name in ("episodes_per_trial", "init_collect_trials_per_task", "tasks_to_collect_per_iter",
                     "eval_interval", "eval_trials", "checkpoint_interval", "keep_checkpoints",
                     "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("init_model_train_ratio", "model_train_ratio", "ac_train_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.num_iterations < 0 or self.video_trials < 0 or self.validation_trials < 0:
            raise ValueError("TrainConfig.num_iterations, video_trials and validation_trials must be >= 0")
        if self.stop_model_training_step is not None and self.stop_model_training_step < 0:
            raise ValueError("TrainConfig.stop_model_training_step must be >= 0 or None")
        if self.mode not in TRAIN_MODES:
            raise ValueError(f"TrainConfig.mode must be one of {TRAIN_MODES}, got {self.mode!r}")
        if self.async_lead < 1 or self.async_publish_interval < 1 or not self.async_timeout_s > 0:
            raise ValueError("TrainConfig.async_lead and async_publish_interval must be >= 1, "
                             "async_timeout_s > 0")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; written to run_dir/config.yaml and read back by --resume and eval."""

    env: str  # registered environment name (meld_core.envs.registry), e.g. "point_nav"
    env_config: dict[str, Any]  # overrides of the environment's own config dataclass (plain YAML data)
    model: ModelConfig  # latent state model
    sac: SACConfig  # actor-critic
    replay: ReplayConfig  # replay and batch formation
    device: DeviceConfig  # where the networks run (not part of the run's identity: may change on resume)
    train: TrainConfig  # schedule, evaluation, checkpoints
    preset: str = "custom"  # the preset this config came from (informational)
    offline_run: str | None = None  # stage 2: a stage-1 run directory whose episodes are offline data
    # A run directory whose best checkpoint (else its newest) gives this run's initial network weights
    # (model and actor-critic; optimisers start fresh). Stage 2 may start from stage 1's networks
    # instead of from scratch (a departure from the reference, which starts stage 2 from scratch).
    init_from: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.env, str) or not self.env:
            raise ValueError("RunConfig.env must be a registered environment name")
        if not isinstance(self.env_config, Mapping):
            raise ValueError(f"RunConfig.env_config must be a mapping, got {type(self.env_config).__name__}")
        object.__setattr__(self, "env_config", dict(self.env_config))
        if self.sac.reward_memory is not None and self.model.reward_input == "none":
            raise ValueError("RunConfig: sac.reward_memory needs a reward in the posterior "
                             "(model.reward_input 'dense' or 'sparse', not 'none')")

    def build_env_config(self) -> Any:
        """The environment's config dataclass (an unknown key or a wrong type raises ValueError)."""
        from meld_core.envs.registry import env_config_class

        return config_from_dict(env_config_class(self.env), self.env_config, _where="RunConfig.env_config")

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same run: everything but the device, the iteration budget and how
        collection and training are scheduled (mode and async settings: a run may resume in the other).

        The environment config is the resolved one (every field of the env's config dataclass), so
        `env_config: {}` and the same values written out are the same run."""
        d = dataclasses.asdict(self)
        d.pop("device")
        for name in ("num_iterations", "mode", "async_lead", "async_publish_interval", "async_timeout_s"):
            d["train"].pop(name)
        d["env_config"] = dataclasses.asdict(self.build_env_config())
        return d

    def with_overrides(self, overrides: Mapping[str, Any]) -> RunConfig:
        """This config with dotted keys set, e.g. {"sac.batch_size": 128, "env_config.episode_length": 30}.

        The result is rebuilt and validated as a YAML file is (`config_from_dict`), the env config
        against the environment's own config dataclass; a key that names no field raises ValueError.
        """
        d = dataclasses.asdict(self)
        for key, value in overrides.items():
            *sections, leaf = key.split(".")
            node = d
            for i, name in enumerate(sections):
                if i > 0 and sections[0] == "env_config" and name not in node:
                    node[name] = {}  # env_config holds only what differs from the env's defaults
                if not isinstance(node.get(name), dict):
                    known = sorted(k for k, v in d.items() if isinstance(v, dict))
                    section = ".".join(sections[:i + 1])
                    raise ValueError(f"unknown setting {key!r}: {section} is not a section of the run config "
                                     f"(its sections: {', '.join(known)})")
                node = node[name]
            node[leaf] = value
        config = config_from_dict(RunConfig, d)
        config.build_env_config()
        return config
