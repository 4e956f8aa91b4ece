"""Per-task episodic replay with crash-safe persistence, and trial batches as the reference forms them.

An `Episode` holds T+1 frames: the reset frame, T steps, and the boundary action of frame T (produced
by the policy, ignored by the environment). Rewards at index t are those of the transition *into*
frame t (0 on the reset frame). `ReplayStore` keeps one store per task (the newest
`capacity_episodes_per_task` in memory, images as uint8) and writes every added episode to
`root/task_XXX/ep_XXXXXXXX.npz` through a temporary file and an atomic rename, so a crash loses at
most the episode being collected; `ReplayStore.load` reads them back and skips (with a warning)
files that are truncated or corrupt.

Besides what the model trains on (images, actions, rewards, successes), an episode records what the
robot did, for inspection and export (`meld_core.data`: MCAP, LeRobot): per frame the stamp, the
measured joint positions and velocities, the commanded joint velocities and those applied after the
safety filter (`FRAME_ARRAYS`; each None when the environment does not report it, see
`meld_core.envs.base`), and in `meta` the task, the camera layout of the stacked image, the joint
names, the control rate and, from the trainer, the run and the policy that acted. Files written
before these existed load with them None and `meta` without those keys.

Batches (as the reference's `run_meld.py` forms them): a *pool* of `num_tasks_per_train *
trials_per_task` trials, tasks drawn uniformly with replacement among tasks that have data, each
trial `episodes_per_trial` random episodes of its task (drawn with replacement) laid end to end. The
actor-critic batch uses the whole pool; the model batch draws `model_batch_frames // trial_length`
trials from the pool with replacement. With an offline store attached (stage 2 of the sparse
procedure) every episode slot is replaced, with probability `offline_ratio`, by an offline episode
of the same task cut to the online length. Deliberate difference: the reference samples *all* tasks
when offline data is loaded; here task selection stays uniform with replacement. Relabelling offline
rewards is the caller's job (episodes are used with the rewards they were stored with).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from meld_core.config import ReplayConfig
from meld_core.files import atomic_write_bytes, remove_stale_temp_files

log = logging.getLogger(__name__)

_EP_RE = re.compile(r"^ep_(\d{8,})\.npz$")
_TASK_RE = re.compile(r"^task_(\d{3,})$")


# The optional per-frame records: name -> (dtype, number of dimensions). Stamps are float64: ROS time
# in seconds since 1970 needs it (float32 would round it to minutes).
FRAME_ARRAYS: dict[str, tuple[type, int]] = {
    "stamps": (np.float64, 1),
    "joint_positions": (np.float32, 2),
    "joint_velocities": (np.float32, 2),
    "commanded_velocities": (np.float32, 2),
    "applied_velocities": (np.float32, 2),
}


@dataclass
class Episode:
    """One episode of T+1 frames (see the module docstring for the conventions)."""

    images: np.ndarray  # uint8 (T+1, H, W, 3); the cameras of meta["cameras"] stacked top to bottom
    actions: np.ndarray  # float32 (T+1, A); the last one is the boundary action (ignored by the env)
    dense_rewards: np.ndarray  # float32 (T+1,); index 0 (reset frame) is 0
    sparse_rewards: np.ndarray  # float32 (T+1,); index 0 is 0
    successes: np.ndarray  # bool (T+1,)
    task_index: int  # index of the train task (one store per task)
    episode_id: int = -1  # global id, increasing within a run (ReplayStore.next_episode_id())
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable extras, e.g. position_in_trial
    stamps: np.ndarray | None = None  # float64 (T+1,): when each frame was observed (s, env clock)
    joint_positions: np.ndarray | None = None  # float32 (T+1, J): measured, meta["joint_names"] order
    joint_velocities: np.ndarray | None = None  # float32 (T+1, J): measured
    commanded_velocities: np.ndarray | None = None  # float32 (T+1, J): commanded at frame t (before the
    # safety filter), executed until frame t+1; 0 on the last frame (nothing is executed after it)
    applied_velocities: np.ndarray | None = None  # float32 (T+1, J): applied after frame t (after the
    # safety filter); 0 on the last frame

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_steps(self) -> int:
        return self.num_frames - 1

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names, top to bottom in `images`. Files written before the layout was recorded hold
        one camera ("scene") or, when twice as high as wide, the scene over the wrist view (the
        TaskEnv convention)."""
        if "cameras" in self.meta:
            return tuple(self.meta["cameras"])
        h, w = self.images.shape[1:3]
        return ("scene", "wrist") if h == 2 * w else ("scene",)

    def camera_images(self) -> dict[str, np.ndarray]:
        """{camera name: uint8 (T+1, H / cameras, W, 3)}, views of `images`."""
        names = self.cameras
        rows = self.images.shape[1] // len(names)
        return {name: self.images[:, i * rows:(i + 1) * rows] for i, name in enumerate(names)}

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Names of the joint columns (meta["joint_names"], else joint_0, joint_1, ...)."""
        if self.meta.get("joint_names"):
            return tuple(self.meta["joint_names"])
        arrays = [a for a in (self.joint_positions, self.joint_velocities, self.commanded_velocities,
                              self.applied_velocities) if a is not None]
        return tuple(f"joint_{i}" for i in range(arrays[0].shape[1] if arrays else 0))

    def validate(self, image_shape: tuple[int, ...] | None = None, action_dim: int | None = None) -> None:
        """Raise ValueError on wrong shapes or dtypes (optionally against an expected spec)."""
        n = self.images.shape[0] if self.images.ndim else 0
        problems = []
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            problems.append(f"images must be uint8 (T+1, H, W, 3), got {self.images.dtype} "
                            f"{self.images.shape}")
        if n < 2:
            problems.append(f"an episode needs at least 2 frames (reset + one step), got {n}")
        if image_shape is not None and tuple(self.images.shape[1:]) != tuple(image_shape):
            problems.append(f"images are {tuple(self.images.shape[1:])}, expected {tuple(image_shape)}")
        if self.actions.dtype != np.float32 or self.actions.ndim != 2 or self.actions.shape[0] != n:
            problems.append(f"actions must be float32 (T+1, A), got {self.actions.dtype} "
                            f"{self.actions.shape}")
        elif action_dim is not None and self.actions.shape[1] != action_dim:
            problems.append(f"actions have dimension {self.actions.shape[1]}, expected {action_dim}")
        for name in ("dense_rewards", "sparse_rewards"):
            arr = getattr(self, name)
            if arr.dtype != np.float32 or arr.shape != (n,):
                problems.append(f"{name} must be float32 (T+1,), got {arr.dtype} {arr.shape}")
        if self.successes.dtype != np.bool_ or self.successes.shape != (n,):
            problems.append(f"successes must be bool (T+1,), got {self.successes.dtype} "
                            f"{self.successes.shape}")
        if int(self.task_index) < 0:
            problems.append(f"task_index must be >= 0, got {self.task_index}")
        if "cameras" in self.meta and (not self.meta["cameras"] or self.images.ndim != 4
                                       or self.images.shape[1] % len(self.meta["cameras"])):
            problems.append(f"meta cameras {self.meta['cameras']} do not split the image height")
        for name, (dtype, ndim) in FRAME_ARRAYS.items():
            arr = getattr(self, name)
            if arr is None:
                continue
            if arr.dtype != dtype or arr.ndim != ndim or arr.shape[0] != n:
                problems.append(f"{name} must be {np.dtype(dtype)} with {ndim} dimension(s) and {n} rows, "
                                f"got {arr.dtype} {arr.shape}")
            elif not np.isfinite(arr).all():
                problems.append(f"{name} must be finite")
        if not problems and not (np.isfinite(self.actions).all() and np.isfinite(self.dense_rewards).all()
                                 and np.isfinite(self.sparse_rewards).all()):
            problems.append("actions and rewards must be finite")
        if problems:
            raise ValueError("invalid Episode: " + "; ".join(problems))

    def cut(self, num_frames: int) -> Episode:
        """The first `num_frames` frames (offline episodes cut to the online length)."""
        if num_frames > self.num_frames:
            raise ValueError(f"cannot cut an episode of {self.num_frames} frames to {num_frames}")
        return Episode(self.images[:num_frames], self.actions[:num_frames], self.dense_rewards[:num_frames],
                       self.sparse_rewards[:num_frames], self.successes[:num_frames], self.task_index,
                       self.episode_id, dict(self.meta),
                       **{k: None if getattr(self, k) is None else getattr(self, k)[:num_frames]
                          for k in FRAME_ARRAYS})

    # ------------------------------------------------------------------ disk format
    def save(self, path: Path, *, compress: bool = True, fsync: bool = True) -> None:
        """Write atomically (`meld_core.files.atomic_write_bytes`: temporary file, fsync, rename)."""
        buf = io.BytesIO()
        frame_arrays = {k: getattr(self, k) for k in FRAME_ARRAYS if getattr(self, k) is not None}
        (np.savez_compressed if compress else np.savez)(
            buf, images=self.images, actions=self.actions, dense_rewards=self.dense_rewards,
            sparse_rewards=self.sparse_rewards, successes=self.successes,
            task_index=np.int64(self.task_index), episode_id=np.int64(self.episode_id),
            meta_json=np.array(json.dumps(self.meta)), **frame_arrays)
        atomic_write_bytes(Path(path), buf.getvalue(), fsync=fsync)

    @classmethod
    def load(cls, path: Path) -> Episode:
        """Read a file written by `save` (also before the per-frame records existed); raises ValueError if
        it is truncated, corrupt or invalid."""
        try:
            with np.load(path, allow_pickle=False) as z:
                ep = cls(images=z["images"], actions=z["actions"], dense_rewards=z["dense_rewards"],
                         sparse_rewards=z["sparse_rewards"], successes=z["successes"],
                         task_index=int(z["task_index"]), episode_id=int(z["episode_id"]),
                         meta=json.loads(str(z["meta_json"])),
                         **{k: z[k] for k in FRAME_ARRAYS if k in z.files})
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read episode file {path}: {type(e).__name__}: {e}") from e
        ep.validate()
        return ep


@dataclass
class TrialBatch:
    """Trials of E episodes laid end to end; L = (T+1) * E frames. numpy arrays."""

    images: np.ndarray  # uint8 (B, L, H, W, 3)
    actions: np.ndarray  # float32 (B, L, A)
    dense: np.ndarray  # float32 (B, L)
    sparse: np.ndarray  # float32 (B, L)
    successes: np.ndarray  # bool (B, L)
    episode_start: np.ndarray  # bool (B, L): frame 0 of each episode
    task_index: np.ndarray  # int64 (B,)

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    @property
    def trial_length(self) -> int:
        return int(self.images.shape[1])

    def select(self, idx: np.ndarray) -> TrialBatch:
        """Trials `idx` (with repeats allowed) as a new batch."""
        return TrialBatch(self.images[idx], self.actions[idx], self.dense[idx], self.sparse[idx],
                          self.successes[idx], self.episode_start[idx], self.task_index[idx])

    def to_torch(self, device: str | torch.device = "cpu") -> TorchTrialBatch:
        """Tensors on `device`; images stay uint8 (converted on the device). Pinned + async on CUDA."""
        device = torch.device(device)
        cuda = device.type == "cuda"

        def move(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(a))
            if cuda:
                return t.pin_memory().to(device, non_blocking=True)
            return t.to(device)

        return TorchTrialBatch(move(self.images), move(self.actions), move(self.dense), move(self.sparse),
                               move(self.successes), move(self.episode_start), move(self.task_index))


@dataclass
class TorchTrialBatch:
    """`TrialBatch` as tensors (same names and shapes)."""

    images: torch.Tensor
    actions: torch.Tensor
    dense: torch.Tensor
    sparse: torch.Tensor
    successes: torch.Tensor
    episode_start: torch.Tensor
    task_index: torch.Tensor


def stack_trials(trials: list[list[Episode]]) -> TrialBatch:
    """TrialBatch from lists of episodes; every trial must have the same total length.

    Writes each episode once into preallocated arrays (one copy of the images, not two).
    """
    lengths = {sum(e.num_frames for e in t) for t in trials}
    if len(lengths) != 1:
        raise ValueError(f"trials of different lengths {sorted(lengths)} cannot be batched; "
                         "all episodes must have the same number of frames")
    b, length, first = len(trials), lengths.pop(), trials[0][0]
    out = TrialBatch(
        images=np.empty((b, length, *first.images.shape[1:]), np.uint8),
        actions=np.empty((b, length, first.actions.shape[1]), np.float32),
        dense=np.empty((b, length), np.float32),
        sparse=np.empty((b, length), np.float32),
        successes=np.empty((b, length), bool),
        episode_start=np.zeros((b, length), bool),
        task_index=np.array([t[0].task_index for t in trials], dtype=np.int64),
    )
    for i, trial in enumerate(trials):
        t0 = 0
        for ep in trial:
            t1 = t0 + ep.num_frames
            out.images[i, t0:t1] = ep.images
            out.actions[i, t0:t1] = ep.actions
            out.dense[i, t0:t1] = ep.dense_rewards
            out.sparse[i, t0:t1] = ep.sparse_rewards
            out.successes[i, t0:t1] = ep.successes
            out.episode_start[i, t0] = True
            t0 = t1
    return out


class ReplayStore:
    """One episodic store per task, persisted to `root` (if given) as episodes are added."""

    def __init__(self, cfg: ReplayConfig, num_tasks: int, root: str | Path | None = None,
                 offline: ReplayStore | None = None, *, keep_frames: bool = True):
        """`keep_frames=False`: episodes are written to disk as usual, but the store keeps only their
        actions, rewards and metadata in memory (a collector that never samples, e.g. the async actor)."""
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        self.cfg = cfg
        self.num_tasks = num_tasks
        self.root = Path(root) if root is not None else None
        self.offline = offline
        self._stores: list[collections.deque[Episode]] = [
            collections.deque(maxlen=cfg.capacity_episodes_per_task) for _ in range(num_tasks)
        ]
        self._next_id = 0
        self._frames: int | None = None  # frames per episode, fixed by the first episode
        self._image_shape: tuple[int, ...] | None = None
        self._action_dim: int | None = None
        self.keep_frames = keep_frames
        self._loaded_ids: list[int] = [-1] * num_tasks  # newest episode id read from disk per task
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ adding and loading
    def next_episode_id(self) -> int:
        """The id the next new episode should carry (one more than any stored or loaded)."""
        return self._next_id

    def task_dir(self, task_index: int) -> Path:
        if self.root is None:
            raise ValueError("this ReplayStore has no root folder")
        return self.root / f"task_{task_index:03d}"

    def _check_compatible(self, ep: Episode) -> None:
        ep.validate(self._image_shape, self._action_dim)
        if not 0 <= ep.task_index < self.num_tasks:
            raise ValueError(f"episode task_index {ep.task_index} outside [0, {self.num_tasks}); "
                             "the store was created for fewer tasks")
        if self._frames is None:
            self._frames = ep.num_frames
            self._image_shape = tuple(ep.images.shape[1:])
            self._action_dim = int(ep.actions.shape[1])
        elif ep.num_frames != self._frames:
            raise ValueError(f"episode has {ep.num_frames} frames but this store holds {self._frames}-frame "
                             "episodes; use one store per episode length")

    def add(self, episode: Episode, *, persist: bool = True) -> int:
        """Store an episode (assigning `episode_id` if it is -1) and write it to disk. Returns the id."""
        with self._lock:
            self._check_compatible(episode)
            if episode.episode_id < 0:
                episode.episode_id = self._next_id
            self._next_id = max(self._next_id, episode.episode_id + 1)
            if persist and self.root is not None:
                folder = self.task_dir(episode.task_index)
                folder.mkdir(parents=True, exist_ok=True)
                episode.save(folder / f"ep_{episode.episode_id:08d}.npz",
                             compress=self.cfg.compress_on_disk, fsync=self.cfg.fsync)
            if not self.keep_frames:
                episode = dataclasses.replace(episode, images=episode.images[:, :0, :0])
            self._stores[episode.task_index].append(episode)
            return episode.episode_id

    @classmethod
    def load(cls, cfg: ReplayConfig, num_tasks: int, root: str | Path,
             offline: ReplayStore | None = None) -> ReplayStore:
        """A store holding every readable episode under `root` (the newest `capacity` per task)."""
        store = cls(cfg, num_tasks, root, offline)
        store.load_from_disk()
        return store

    def load_from_disk(self) -> int:
        """Read episodes under `root`; skip unreadable files and tasks beyond num_tasks with a warning.

        Temporary files of interrupted writes are removed: call this only from the process that writes
        the episodes (a reader beside a running writer uses `load_new`)."""
        if self.root is None or not self.root.exists():
            return 0
        for task_dir in self._task_dirs():
            for tmp in remove_stale_temp_files(task_dir):
                log.warning("replay: removed %s, an episode file whose write was interrupted", tmp)
        loaded, skipped = self._read_new(self.cfg.capacity_episodes_per_task)
        log.info("replay: loaded %d episodes from %s (%d skipped)", loaded, self.root, skipped)
        return loaded

    def load_new(self) -> int:
        """Read the episode files that appeared since the last load (another process writes them
        atomically, so a file is either complete or absent); returns how many were added."""
        if self.root is None or not self.root.exists():
            return 0
        return self._read_new(None)[0]

    def _task_dirs(self) -> list[Path]:
        dirs = []
        for task_dir in sorted(self.root.iterdir()):
            m = _TASK_RE.match(task_dir.name)
            if not m or not task_dir.is_dir():
                continue
            if int(m.group(1)) >= self.num_tasks:
                log.warning("replay: ignoring %s: task %s >= num_tasks %d", task_dir, m.group(1),
                            self.num_tasks)
                continue
            dirs.append(task_dir)
        return dirs

    def _read_new(self, newest: int | None) -> tuple[int, int]:
        """Load files with ids above the newest already read, per task (only the last `newest`)."""
        loaded = skipped = 0
        for task_dir in self._task_dirs():
            task = int(_TASK_RE.match(task_dir.name).group(1))
            seen = self._loaded_ids[task]
            files = sorted((int(m.group(1)), p) for p in task_dir.iterdir()
                           if (m := _EP_RE.match(p.name)) and int(m.group(1)) > seen)
            if newest is not None:
                files = files[-newest:]
            for ep_id, path in files:
                try:
                    ep = Episode.load(path)
                    if ep.task_index != task:
                        raise ValueError(f"task_index {ep.task_index} does not match folder task {task}")
                    self.add(ep, persist=False)
                    loaded += 1
                except ValueError as e:
                    skipped += 1
                    log.warning("replay: skipping episode file %s (%s)", path, e)
                self._next_id = max(self._next_id, ep_id + 1)
                self._loaded_ids[task] = max(self._loaded_ids[task], ep_id)
        return loaded, skipped

    # ------------------------------------------------------------------ sizes
    def num_episodes(self, task_index: int) -> int:
        return len(self._stores[task_index])

    @property
    def total_episodes(self) -> int:
        return sum(len(s) for s in self._stores)

    @property
    def total_steps(self) -> int:
        return sum(ep.num_steps for s in self._stores for ep in s)

    def tasks_with_data(self) -> list[int]:
        return [i for i, s in enumerate(self._stores) if s]

    def episodes(self, task_index: int) -> list[Episode]:
        """The episodes in memory for one task, oldest first (a copy of the list)."""
        return list(self._stores[task_index])

    # ------------------------------------------------------------------ sampling
    def _draw_episode(self, rng: np.random.Generator, task: int, frames: int) -> Episode:
        online = self._stores[task]
        off = None
        if self.offline is not None and task < self.offline.num_tasks:
            off = self.offline._stores[task]
        if off and rng.random() < self.cfg.offline_ratio:
            return off[int(rng.integers(len(off)))].cut(frames)
        return online[int(rng.integers(len(online)))]

    def sample_trials(self, rng: np.random.Generator, episodes_per_trial: int,
                      num_trials: int | None = None) -> TrialBatch:
        """The trial pool: `num_tasks_per_train * trials_per_task` trials (or `num_trials`)."""
        return stack_trials(self._pool_episodes(rng, episodes_per_trial, num_trials))

    def _pool_episodes(self, rng: np.random.Generator, episodes_per_trial: int,
                       num_trials: int | None = None) -> list[list[Episode]]:
        if episodes_per_trial < 1:
            raise ValueError(f"episodes_per_trial must be >= 1, got {episodes_per_trial}")
        if not self.keep_frames:
            raise RuntimeError("this ReplayStore keeps no frames in memory (keep_frames=False): it cannot "
                               "form batches; load the episodes with a store that keeps them")
        with self._lock:
            tasks = self.tasks_with_data()
            if not tasks:
                raise ValueError("the replay store is empty: collect episodes before sampling")
            frames = self._frames
            assert frames is not None
            if num_trials is None:
                chosen = rng.choice(tasks, size=self.cfg.num_tasks_per_train, replace=True)
                chosen = np.repeat(chosen, self.cfg.trials_per_task)
            else:
                chosen = rng.choice(tasks, size=num_trials, replace=True)
            return [[self._draw_episode(rng, int(t), frames) for _ in range(episodes_per_trial)]
                    for t in chosen]

    def model_batch_from(self, pool: TrialBatch, rng: np.random.Generator) -> TrialBatch:
        """`model_batch_frames // trial_length` trials drawn from the pool with replacement."""
        n = max(1, self.cfg.model_batch_frames // pool.trial_length)
        return pool.select(rng.integers(pool.batch_size, size=n))

    def sample_model_batch(self, rng: np.random.Generator, episodes_per_trial: int) -> TrialBatch:
        """A model batch (reference: 12 x 41 frames with 512 model_bs_in_steps and E=1, T=40)."""
        pool = self._pool_episodes(rng, episodes_per_trial)
        n = max(1, self.cfg.model_batch_frames // sum(e.num_frames for e in pool[0]))
        return stack_trials([pool[i] for i in rng.integers(len(pool), size=n)])  # only these are copied

    def sample_ac_batch(self, rng: np.random.Generator, episodes_per_trial: int) -> TrialBatch:
        """An actor-critic batch: the whole trial pool (the agent draws transitions from it)."""
        return self.sample_trials(rng, episodes_per_trial)
