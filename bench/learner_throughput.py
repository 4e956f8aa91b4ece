"""Learner throughput against the device's limit: model and actor-critic steps per second, the FLOPs of each
step (torch.utils.flop_counter), the measured matmul peak (fp32 and bf16, same run) and the fraction reached.

    python bench/learner_throughput.py                       # reference sizes, CPU (+CUDA)
    python bench/learner_throughput.py --size small --steps 20
    python bench/learner_throughput.py --preset widowx_insertion:small --threads 1
    python bench/learner_throughput.py --device cuda --compile    # the filter loop compiled
    python bench/learner_throughput.py --baseline     # torch's layers, default allocator

Reference sizes: 128x64 images (two cameras), z1 64 / z2 32, base depth 64, model batch 12 trials x 41
frames, actor-critic batch 512 transitions drawn from a pool of 20 trials x 41 frames (whose beliefs are
recomputed every AC step, as the reference does). `--size small`: 64x64 single camera, base depth 16,
z1 32 / z2 16, MLPs of 256, 8 trials x 21 frames for the model, 10 x 21 pool and 256 transitions for AC.
`--preset ENV:NAME` takes the sizes of a run preset as it is now (model, SAC, batch sizes, E and T).
Synthetic data (random images and rewards): the cost of a step does not depend on the pixel values.

Prints one JSON line. `peak_*_tflops`: a 4096x4096 matmul in that precision on this device, timed in this
run; `*_peak_fraction` = achieved FLOP rate / the peak of the step's precision (bf16 when the convolutions
run under bf16 autocast). `*_cpu_s` (process CPU time per step, all threads) and `load_avg_1min` tell a
busy machine from a slow one: figures are only comparable from a quiet machine. `combined_steps_per_s` =
2 / (model + AC step time), one model step and one AC step alternating. `--baseline` runs torch's own conv
layers with glibc's default allocator, the code before the speed work, for a same-run comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from meld_core.algo.agent import MeldAgent
from meld_core.algo.conv import FastConvMixin
from meld_core.algo.replay import ReplayStore, TrialBatch
from meld_core.config import DeviceConfig, ModelConfig, ReplayConfig, SACConfig
from meld_core.testing.core_fakes import random_episode

SIZES = {
    "reference": dict(
        model=ModelConfig(), sac=SACConfig(), action_dim=7, model_trials=12, pool_trials=20, frames=41,
        episodes_per_trial=1,
    ),
    "small": dict(
        model=ModelConfig(image_shape=(64, 64, 3), base_depth=16, latent1_size=32, latent2_size=16,
                          hidden_size=256),
        sac=SACConfig(actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=256),
        action_dim=2, model_trials=8, pool_trials=10, frames=21, episodes_per_trial=1,
    ),
}


def preset_size(name: str) -> dict:
    """The sizes of run preset `ENV:PRESET` (e.g. widowx_insertion:small) as the preset defines them now."""
    from meld_core.config.presets import preset_config
    from meld_core.envs.registry import make_env

    env_name, preset = name.split(":")
    cfg = preset_config(env_name, preset)
    env = make_env(cfg.env, cfg.build_env_config())
    try:
        T, action_dim = env.spec.episode_length, env.spec.action_dim
    finally:
        env.close()
    E = cfg.train.episodes_per_trial
    frames = (T + 1) * E
    return dict(model=cfg.model, sac=cfg.sac, action_dim=action_dim, frames=frames, episodes_per_trial=E,
                model_trials=max(1, cfg.replay.model_batch_frames // frames),
                pool_trials=cfg.replay.num_tasks_per_train * cfg.replay.trials_per_task)


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


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    """FLOP/s of an n x n matmul in `dtype` on `device` (best of `reps`)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def count_flops(fn, batch) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(batch)
    return int(counter.get_total_flops())


def replay_sampling(spec: dict, device: torch.device, steps: int) -> dict:
    """Host-side cost of forming the batches from a filled ReplayStore (and copying them to `device`)."""
    rng = np.random.default_rng(1)
    E = spec["episodes_per_trial"]
    cfg = ReplayConfig(num_tasks_per_train=spec["pool_trials"],
                       model_batch_frames=spec["model_trials"] * spec["frames"])
    store = ReplayStore(cfg, num_tasks=spec["pool_trials"])
    for task in range(spec["pool_trials"]):
        for _ in range(5):
            store.add(random_episode(rng, task, spec["frames"] // E - 1, spec["model"].image_shape,
                                     spec["action_dim"]))
    out = {}
    for name, fn in (("model", store.sample_model_batch), ("ac", store.sample_ac_batch)):
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            fn(rng, E).to_torch(device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[f"sample_{name}_batch_s"] = round(statistics.median(times[1:]), 4)
    return out


def run(device: str, spec: dict, steps: int, warmup: int, bf16: bool | None, channels_last: bool,
        compile_filter: bool, baseline: bool) -> dict:
    cfg = DeviceConfig(device=device, cpu_bf16=bf16, cuda_amp=bf16 is not False, channels_last=channels_last,
                       compile=compile_filter, cpu_allocator_cache=not baseline)
    agent = MeldAgent(spec["model"], spec["sac"], spec["action_dim"], cfg, seed=0)
    if baseline:
        for m in agent.model.modules():
            if isinstance(m, FastConvMixin):
                m.fast = False
    rng = np.random.default_rng(0)
    shape, a, E = spec["model"].image_shape, spec["action_dim"], spec["episodes_per_trial"]
    frames = spec["frames"]
    model_batch = synthetic_batch(rng, spec["model_trials"], frames, shape, a, frames // E)
    model_batch = model_batch.to_torch(agent.device)
    pool = synthetic_batch(rng, spec["pool_trials"], frames, shape, a, frames // E).to_torch(agent.device)
    sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    agent.update_model(model_batch)
    agent.update_actor_critic(pool)
    sync()
    first_s = time.perf_counter() - t0  # includes compilation with --compile
    model_flops = count_flops(agent.update_model, model_batch)
    ac_flops = count_flops(agent.update_actor_critic, pool)
    model_t, model_cpu = time_steps(agent.update_model, model_batch, steps, warmup, sync)
    ac_t, ac_cpu = time_steps(agent.update_actor_critic, pool, steps, warmup, sync)
    m, c = statistics.median(model_t), statistics.median(ac_t)
    peaks = {name: matmul_peak(agent.device, dt) for name, dt in (("fp32", torch.float32),
                                                                  ("bf16", torch.bfloat16))}
    peak = peaks["bf16" if agent.learner_precision == "bfloat16" else "fp32"]
    sampling = replay_sampling(spec, agent.device, steps)
    return {
        "bench": "learner_throughput", "device": str(agent.device), "device_name": device_name(agent.device),
        "precision": agent.learner_precision, "channels_last": channels_last, "compile": compile_filter,
        "baseline_code": baseline, "threads": torch.get_num_threads(),
        "model_batch": f"{spec['model_trials']}x{frames}x{shape[0]}x{shape[1]}",
        "ac_batch": f"{spec['sac'].batch_size} from {spec['pool_trials']}x{frames}",
        "model_step_s": round(m, 4), "ac_step_s": round(c, 4),
        "model_steps_per_s": round(1 / m, 3), "ac_steps_per_s": round(1 / c, 3),
        "combined_steps_per_s": round(2 / (m + c), 3),
        "model_gflop": round(model_flops / 1e9, 2), "ac_gflop": round(ac_flops / 1e9, 2),
        "model_tflops": round(model_flops / m / 1e12, 3), "ac_tflops": round(ac_flops / c / 1e12, 3),
        "peak_fp32_tflops": round(peaks["fp32"] / 1e12, 3),
        "peak_bf16_tflops": round(peaks["bf16"] / 1e12, 3),
        "model_peak_fraction": round(model_flops / m / peak, 3),
        "ac_peak_fraction": round(ac_flops / c / peak, 3),
        "first_steps_s": round(first_s, 2),  # one model + one AC step from cold (compilation included)
        "model_step_cpu_s": round(model_cpu, 4), "ac_step_cpu_s": round(ac_cpu, 4),  # process CPU time
        **sampling,  # replay -> TrialBatch -> tensors on the device, per batch
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "parameters": agent.num_parameters(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else "cpu"
    except OSError:
        model = "cpu"
    return f"{model}, {len(os.sched_getaffinity(0))} usable cores, {torch.backends.cpu.get_cpu_capability()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="all", help="cpu, cuda, or all (cpu, plus cuda when available)")
    p.add_argument("--size", choices=sorted(SIZES), default="reference")
    p.add_argument("--preset", default=None, metavar="ENV:PRESET", help="sizes of a run preset, e.g. "
                   "widowx_insertion:small (instead of --size)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per kind (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bf16 autocast of the convolutions (auto: CPU only with native bf16; CUDA on)")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the filter loop (DeviceConfig.compile)")
    p.add_argument("--baseline", action="store_true",
                   help="torch's conv layers and glibc's default allocator (the code before the speed work)")
    p.add_argument("--episodes-per-trial", type=int, default=None, help="override E of --size")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = preset_size(args.preset) if args.preset else dict(SIZES[args.size])
    if args.episodes_per_trial:
        spec["episodes_per_trial"] = args.episodes_per_trial
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("CUDA not available: measuring CPU only", file=sys.stderr)
    bf16 = {"auto": None, "on": True, "off": False}[args.bf16]
    results = [run(d, spec, args.steps, args.warmup, bf16, not args.no_channels_last, args.compile,
                   args.baseline) for d in devices]
    for r in results:
        r["size"] = args.preset or args.size
    final = results[0] if len(results) == 1 else {"bench": "learner_throughput", "results": results}
    print(json.dumps(final))


if __name__ == "__main__":
    main()
