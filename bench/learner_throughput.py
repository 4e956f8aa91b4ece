"""Learner throughput: model and actor-critic gradient steps per second at the reference batch sizes.

    python bench/learner_throughput.py          # reference sizes, CPU (+CUDA if present)
    python bench/learner_throughput.py --size small --steps 20

Reference sizes: 128x64 images (two cameras), z1 64 / z2 32, base depth 64, model batch 12 trials x 41
frames, actor-critic batch 512 transitions drawn from a pool of 20 trials x 41 frames (whose beliefs are
recomputed every AC step, as the reference does). `--size small`: 64x64 single camera, base depth 16,
z1 32 / z2 16, MLPs of 256, 8 trials x 21 frames for the model, 10 x 21 pool and 256 transitions for AC.
Synthetic data (random images and rewards): the cost of a step does not depend on the pixel values.
Prints one JSON line at the end. `*_cpu_s` (process CPU time per step, all threads) and
`load_avg_1min` tell a busy machine from a slow one. `combined_steps_per_s` = 2 / (model + AC step time),
i.e. one model step and one AC step alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

from meld_core.algo.agent import MeldAgent
from meld_core.algo.replay import ReplayStore, TrialBatch
from meld_core.config import DeviceConfig, ModelConfig, ReplayConfig, SACConfig
from meld_core.testing.core_fakes import random_episode

SIZES = {
    "reference": dict(
        model=ModelConfig(), sac=SACConfig(), action_dim=7, model_trials=12, pool_trials=20, frames=41
    ),
    "small": dict(
        model=ModelConfig(image_shape=(64, 64, 3), base_depth=16, latent1_size=32, latent2_size=16,
                          hidden_size=256),
        sac=SACConfig(actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=256),
        action_dim=2, model_trials=8, pool_trials=10, frames=21,
    ),
}


def synthetic_batch(rng: np.random.Generator, trials: int, frames: int, image_shape, action_dim: int,
                    episode_frames: int) -> TrialBatch:
    start = np.zeros((trials, frames), bool)
    start[:, ::episode_frames] = True
    return TrialBatch(
        images=rng.integers(0, 256, (trials, frames, *image_shape), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (trials, frames, action_dim)).astype(np.float32),
        dense=rng.normal(size=(trials, frames)).astype(np.float32),
        sparse=np.zeros((trials, frames), np.float32),
        successes=np.zeros((trials, frames), bool),
        episode_start=start,
        task_index=np.arange(trials),
    )


def time_steps(fn, batch, steps: int, warmup: int, sync) -> tuple[list[float], float]:
    """Wall times of `steps` calls after `warmup`, and the mean process CPU time per call."""
    for _ in range(warmup):
        fn(batch)
    times = []
    c0 = time.process_time()
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        fn(batch)
        sync()
        times.append(time.perf_counter() - t0)
    return times, (time.process_time() - c0) / steps


def replay_sampling(spec: dict, device: torch.device, steps: int) -> dict:
    """Host-side cost of forming the batches from a filled ReplayStore (and copying them to `device`)."""
    rng = np.random.default_rng(1)
    frames = spec["frames"]
    cfg = ReplayConfig(num_tasks_per_train=spec["pool_trials"],
                       model_batch_frames=spec["model_trials"] * frames)
    store = ReplayStore(cfg, num_tasks=spec["pool_trials"])
    for task in range(spec["pool_trials"]):
        for _ in range(5):
            store.add(random_episode(rng, task, frames - 1, spec["model"].image_shape, spec["action_dim"]))
    out = {}
    for name, fn in (("model", store.sample_model_batch), ("ac", store.sample_ac_batch)):
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            fn(rng, 1).to_torch(device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[f"sample_{name}_batch_s"] = round(statistics.median(times[1:]), 4)
    return out


def run(device: str, size: str, steps: int, warmup: int, bf16: bool | None, channels_last: bool,
        episodes_per_trial: int) -> dict:
    spec = SIZES[size]
    cfg = DeviceConfig(device=device, cpu_bf16=bf16, cuda_amp=bf16 is not False,
                       channels_last=channels_last)
    agent = MeldAgent(spec["model"], spec["sac"], spec["action_dim"], cfg, seed=0)
    rng = np.random.default_rng(0)
    shape, a = spec["model"].image_shape, spec["action_dim"]
    ep_frames = spec["frames"] // episodes_per_trial
    frames = ep_frames * episodes_per_trial
    model_batch = synthetic_batch(rng, spec["model_trials"], frames, shape, a, ep_frames)
    model_batch = model_batch.to_torch(agent.device)
    pool = synthetic_batch(rng, spec["pool_trials"], frames, shape, a, ep_frames).to_torch(agent.device)
    sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
    model_t, model_cpu = time_steps(agent.update_model, model_batch, steps, warmup, sync)
    ac_t, ac_cpu = time_steps(agent.update_actor_critic, pool, steps, warmup, sync)
    m, c = statistics.median(model_t), statistics.median(ac_t)
    sampling = replay_sampling(spec, agent.device, steps)
    return {
        "bench": "learner_throughput", "device": str(agent.device), "size": size,
        "precision": agent.learner_precision,
        "channels_last": channels_last, "threads": torch.get_num_threads(),
        "model_batch": f"{spec['model_trials']}x{frames}x{shape[0]}x{shape[1]}",
        "ac_batch": f"{spec['sac'].batch_size} from {spec['pool_trials']}x{frames}",
        "model_step_s": round(m, 4), "ac_step_s": round(c, 4),
        "model_steps_per_s": round(1 / m, 3), "ac_steps_per_s": round(1 / c, 3),
        "combined_steps_per_s": round(2 / (m + c), 3),
        "model_step_cpu_s": round(model_cpu, 4), "ac_step_cpu_s": round(ac_cpu, 4),  # process CPU time
        **sampling,  # replay -> TrialBatch -> tensors on the device, per batch
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "parameters": agent.num_parameters(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="all", help="cpu, cuda, or all (cpu, plus cuda when available)")
    p.add_argument("--size", choices=sorted(SIZES), default="reference")
    p.add_argument("--steps", type=int, default=5, help="timed steps per kind (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bf16 autocast of the convolutions (auto: CPU only with native bf16; CUDA on)")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--episodes-per-trial", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("CUDA not available: measuring CPU only")
    results = []
    for d in devices:
        bf16 = {"auto": None, "on": True, "off": False}[args.bf16]
        r = run(d, args.size, args.steps, args.warmup, bf16, not args.no_channels_last,
                args.episodes_per_trial)
        results.append(r)
    final = results[0] if len(results) == 1 else {"bench": "learner_throughput", "results": results}
    print(json.dumps(final))


if __name__ == "__main__":
    main()
