"""Named run configurations per environment: smoke (CI seconds), small (a CPU benchmark), paper.

    meld train --env point_nav --preset small --run-dir runs/point_small

`preset_config(env, preset, stage)` returns a complete `RunConfig`; it is written to
`run_dir/config.yaml` and is all a resumed run needs. "paper" uses the reference's numbers for the
two-episode sparse buttons experiment (the reference's `2_sawyerButtons_2episodes_sparse.gin`: T=30,
E=2, 15/12 tasks, init 5 trials/task, model/AC ratios 0.8/0.5, model batch 512 frames, AC batch 512,
eval every 100 iterations over 10 trials) with the reference network sizes (z1=64, z2=32, base depth
64, actor/critic 512x2); it needs a GPU to be practical.

Every preset validates on train tasks at each evaluation (`TrainConfig.validation_trials`) and keeps
the best checkpoint; on the robot (widowx paper) that is 10 more trials per 100 iterations.

Stages (the sparse two-stage recipe, the paper's appendix C): "dense" -- the posterior sees the dense
reward; "sparse" -- the posterior sees only the sparse reward, while the reward decoder and the
critic use the dense one, optionally with a stage-1 run's episodes as offline data. A builder may
tune more per stage (point_nav's small preset gives the sparse stage's critic the trial's return).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from meld_core.config import DeviceConfig, ModelConfig, ReplayConfig, RunConfig, SACConfig, TrainConfig

PRESETS = ("smoke", "small", "paper")
STAGES = ("dense", "sparse")


class UnknownPresetError(ValueError):
    """The requested preset (or stage) does not exist."""


def _point_nav(preset: str, stage: str) -> RunConfig:
    if preset == "smoke":
        T, E, n_train = 8, 2, 3
        return RunConfig(
            env="point_nav",
            env_config={"image_size": 32, "episode_length": T, "num_train_tasks": n_train,
                        "num_eval_tasks": 2, "video_size": 96},
            model=ModelConfig(image_shape=(32, 32, 3), latent1_size=8, latent2_size=8, base_depth=4,
                              hidden_size=32, reward_tile=8),
            sac=SACConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64),
            replay=ReplayConfig(num_tasks_per_train=n_train, model_batch_frames=2 * (T + 1) * E),
            device=DeviceConfig(device="cpu", cpu_bf16=False, num_threads=1),
            train=TrainConfig(episodes_per_trial=E, init_collect_trials_per_task=1,
                              init_model_train_ratio=0.25, model_train_ratio=0.25, ac_train_ratio=0.25,
                              num_iterations=6, eval_interval=3,
                              eval_trials=2, video_trials=1, checkpoint_interval=2, keep_checkpoints=2,
                              log_interval=1, validation_trials=2),
            preset="smoke",
        )
    if preset == "small":
        # Sized for ~30 minutes on 2 CPU cores. 32x32 images (the point is a large disc, so position
        # is easy to see), a narrow conv stack, small latents, model lr 1e-3 (the reference's 1e-4
        # learned the robot's position ~5x slower in a linear-probe test), the env is free so every
        # env step buys 0.5 model and 1 actor-critic step, and a low initial temperature because the
        # dense reward per step is small (~-1) next to the entropy bonus at alpha=1. Discount 0.9 as
        # PEARL's point robot: with 0.99 the critics were still far from their fixed point after
        # 3600 steps (Q -7.5 of about -50) and the policy improved slowly. z2 is a deterministic GRU
        # state (ModelConfig.z2_transition): with the reference's stochastic z2 the belief forgot in
        # episode 2 the goal that episode 1's sparse reward had revealed.
        # 100 train goals (largest gap ~5.5 degrees, inside the ~11.5-degree success circle): with 20
        # (gaps up to 22 degrees) episode 2 went to the nearest *train* goal instead of the one episode
        # 1 had found (bench/point_nav_memory.py). One warm-up trial per goal keeps the warm-up at 100.
        # The sparse stage's critic values the whole trial (TD across the episode reset, discount 0.95,
        # next frame's reward) and sees the sparse reward too (td_sparse_weight): without both, episode
        # 1 never learned to search and episode 2 stayed near 40 % (README, learning benchmark).
        T, E, n_train, size = 20, 2, 100, 32
        sac = SACConfig(actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=256,
                        initial_alpha=0.1, gamma=0.9)
        if stage == "sparse":
            sac = dataclasses.replace(sac, gamma=0.95, td_reward="next", td_across_resets=True,
                                      td_sparse_weight=1.0)
        return RunConfig(
            env="point_nav",
            env_config={"image_size": size, "episode_length": T, "num_train_tasks": n_train,
                        "num_eval_tasks": 10},
            model=ModelConfig(image_shape=(size, size, 3), latent1_size=32, latent2_size=16, base_depth=8,
                              hidden_size=128, reward_tile=16, lr=1e-3, z2_transition="gru"),
            sac=sac,
            replay=ReplayConfig(num_tasks_per_train=10, model_batch_frames=4 * (T + 1) * E),
            # bf16 convolutions where the CPU has native bf16 (the default): a model+AC step took 0.90x
            # the CPU time of fp32 here (1 thread, same process); smoke presets stay fp32 (no gain)
            device=DeviceConfig(device="auto"),
            train=TrainConfig(episodes_per_trial=E, init_collect_trials_per_task=1,
                              init_model_train_ratio=0.5, model_train_ratio=0.5, ac_train_ratio=1.0,
                              num_iterations=400, eval_interval=25, eval_trials=10, video_trials=2,
                              checkpoint_interval=25, keep_checkpoints=3, log_interval=5,
                              validation_trials=40),
            preset="small",
        )
    if preset == "paper":
        T, E, n_train = 30, 2, 15
        return RunConfig(
            env="point_nav",
            env_config={"image_size": 64, "episode_length": T, "num_train_tasks": n_train,
                        "num_eval_tasks": 12},
            model=ModelConfig(image_shape=(64, 64, 3)),
            sac=SACConfig(),
            replay=ReplayConfig(num_tasks_per_train=n_train, model_batch_frames=512),
            device=DeviceConfig(device="auto"),
            train=TrainConfig(episodes_per_trial=E, validation_trials=n_train),
            preset="paper",
        )
    raise UnknownPresetError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")


def _widowx_insertion(preset: str, stage: str) -> RunConfig:
    # Observations are two cameras stacked vertically: (2 * image_size, image_size, 3).
    if preset == "smoke":
        T, E, n_train, size = 10, 2, 3, 32
        return RunConfig(
            env="widowx_insertion",
            env_config={"image_size": size, "episode_length": T, "num_train_tasks": n_train,
                        "num_eval_tasks": 2, "video_size": 64},
            model=ModelConfig(image_shape=(2 * size, size, 3), latent1_size=8, latent2_size=8, base_depth=4,
                              hidden_size=32, reward_tile=8),
            sac=SACConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64),
            replay=ReplayConfig(num_tasks_per_train=n_train, model_batch_frames=2 * (T + 1) * E),
            device=DeviceConfig(device="cpu", cpu_bf16=False, num_threads=1),
            train=TrainConfig(episodes_per_trial=E, init_collect_trials_per_task=1,
                              init_model_train_ratio=0.2, model_train_ratio=0.1, ac_train_ratio=0.1,
                              num_iterations=3, eval_interval=3, eval_trials=2, video_trials=1,
                              checkpoint_interval=2, keep_checkpoints=2, log_interval=1, validation_trials=2),
            preset="smoke",
        )
    if preset == "small":
        # The recipe that learned the insertion on 2 CPU cores (README, "WidowX insertion"). Departures
        # from the robot's setting: 32x32 per camera (the robot's are 64x64), a narrow model (base depth
        # 8, latents 32/16, GRU z2 as point_nav), 30- and 40-step episodes instead of the env's 40.
        # Stage 1 (dense): 40 train tasks, one port per router pose, 300 iterations = 20 400 env steps
        # (about 65 min on one core). Stage 2 (sparse; --init-from the stage-1 run, --offline-run a dense
        # run on the stage-2 tasks): 80 train tasks on 20 router poses x 4 ports, so that the visible
        # pose does not tell the goal port (with one port per pose the sparse stage learnt pose -> port
        # by heart: 0.9 on train tasks, 0.4 on held-out ones); 40-step episodes, room to try a second
        # port in episode 1; the trial-level critic of point_nav's sparse stage with the sparse reward
        # alone as its TD reward (td_dense_weight 0: a critic that cannot know the goal port values the
        # dense reward averaged over the 4 ports, which pays most at an inner port and for staying
        # there; with it the agent went to port 1 whatever the task, 38 % in episode 2, without it it
        # learnt to try ports 1, 2, 3 in turn, 66 %); 10-step TD targets (n_step 10: with one-step
        # targets the value of a port the search has not tried yet, seen in the offline episodes, moves
        # back one frame per round of policy improvement; with 10 the agent also tried port 0 and used
        # episode 1 in episode 2: 81 % in episode 2, 71 % after a miss in episode 1, against 9 %);
        # 425 iterations, so that both stages and the offline run stay within the paper's 80 000 env
        # steps.
        size, E = 32, 2
        T, n_train, ports_per_pose, iterations = (40, 80, 4, 425) if stage == "sparse" else (30, 40, 1, 300)
        sac = SACConfig(actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=256, gamma=0.95,
                        initial_alpha=0.1)
        if stage == "sparse":
            sac = dataclasses.replace(sac, td_reward="next", td_across_resets=True, td_dense_weight=0.0,
                                      td_sparse_weight=1.0, n_step=10)
        return RunConfig(
            env="widowx_insertion",
            env_config={"image_size": size, "episode_length": T, "num_train_tasks": n_train,
                        "num_eval_tasks": 10, "train_ports_per_pose": ports_per_pose},
            model=ModelConfig(image_shape=(2 * size, size, 3), latent1_size=32, latent2_size=16,
                              base_depth=8, hidden_size=128, reward_tile=16, lr=1e-3, z2_transition="gru"),
            sac=sac,
            replay=ReplayConfig(num_tasks_per_train=10, model_batch_frames=4 * (T + 1) * E),
            # bf16 convolutions where the CPU has native bf16 (the default): a model+AC step took 0.68x
            # the CPU time of fp32 (1 thread, same process)
            device=DeviceConfig(device="auto", num_threads=1),
            train=TrainConfig(episodes_per_trial=E, init_collect_trials_per_task=1,
                              init_model_train_ratio=0.5, model_train_ratio=0.5, ac_train_ratio=1.0,
                              num_iterations=iterations, eval_interval=25, eval_trials=10, video_trials=1,
                              checkpoint_interval=25, keep_checkpoints=3, log_interval=2,
                              validation_trials=10),
            preset="small",
        )
    if preset == "paper":
        # Reference numbers: peg insertion (ratios 0.3/0.3, 20 tasks per gradient step, model and AC
        # batches of 512) with the two-episode trials of the sparse buttons run; env defaults
        # (T=40 at 3.3 Hz, 20 train / 10 held-out tasks, two 64x64 cameras).
        E = 2
        return RunConfig(
            env="widowx_insertion",
            env_config={},
            model=ModelConfig(image_shape=(128, 64, 3)),
            sac=SACConfig(),
            replay=ReplayConfig(num_tasks_per_train=20, model_batch_frames=512),
            device=DeviceConfig(device="auto"),
            train=TrainConfig(episodes_per_trial=E, init_collect_trials_per_task=5, model_train_ratio=0.3,
                              ac_train_ratio=0.3, validation_trials=10),
            preset="paper",
        )
    raise UnknownPresetError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")


# env name -> preset builder (preset, stage); the environment's own module owns nothing of this.
# preset_config switches the posterior to the sparse reward itself; a builder may tune more per stage.
_BUILDERS: dict[str, Callable[[str, str], RunConfig]] = {
    "point_nav": _point_nav,
    "widowx_insertion": _widowx_insertion,
}


def register_presets(env: str, builder: Callable[[str, str], RunConfig]) -> None:
    """Presets for a task family registered elsewhere (e.g. by a plugin or a test)."""
    _BUILDERS[env] = builder


def preset_config(env: str, preset: str, stage: str = "dense", offline_run: str | None = None,
                  **train_overrides: Any) -> RunConfig:
    """The complete RunConfig of `preset` for `env` and `stage` ("dense" or "sparse")."""
    from meld_core.envs.registry import env_entry

    env_entry(env)  # raises UnknownEnvError with the list of names
    if env not in _BUILDERS:
        raise UnknownPresetError(f"no presets are defined for environment {env!r}")
    if preset not in PRESETS:
        raise UnknownPresetError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if stage not in STAGES:
        raise UnknownPresetError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    if offline_run is not None and stage != "sparse":
        raise UnknownPresetError("--offline-run is only used by the sparse stage (add --stage sparse)")
    cfg = _BUILDERS[env](preset, stage)
    if stage == "sparse":
        cfg = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, reward_input="sparse", reward_target="dense"),
            offline_run=offline_run)
    if train_overrides:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train_overrides))
    return cfg
