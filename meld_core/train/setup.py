"""Setting a run up: which config it runs, whether the run directory fits it, its offline data, and
what a resumed run still owes.

    config = resolve_run_config("runs/wx", resume=False, env="widowx_insertion", preset="small")
    prepare_run_dir(RunDir("runs/wx"), config, resume=False)

One `resolve_run_config` serves `meld train` and the ROS agent node: a resumed run continues with
its stored config (only the iteration budget may change), otherwise the config comes from a YAML
file (`run_config`, e.g. another run's config.yaml) or from a preset. The identity of a run is its
config without the device and the iteration budget: a run directory refuses a config of another
identity, and a stage-2 run refuses offline data whose train tasks differ from its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from meld_core.algo.replay import ReplayStore
from meld_core.config import RunConfig, config_from_dict
from meld_core.envs.base import EnvSpec, Task, TaskEnv
from meld_core.train.rundir import CheckpointError, RunDir, RunDirError

logger = logging.getLogger(__name__)


class ConfigMismatchError(RunDirError):
    """The run directory (or offline run) belongs to a different configuration."""


def load_run_config(run_dir: RunDir) -> RunConfig:
    data = run_dir.read_yaml(run_dir.config_path)
    try:
        return config_from_dict(RunConfig, data)
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{run_dir.config_path} is not a valid run config: {exc}") from None


def resolve_run_config(
    run_dir: str | Path,
    *,
    resume: bool,
    env: str | None = None,
    preset: str = "small",
    stage: str = "dense",
    offline_run: str | None = None,
    config_file: str | Path | None = None,
    iterations: int | None = None,
    seed: int | None = None,
) -> RunConfig:
    """The config a run trains with (see the module docstring). `iterations`/`seed` override the
    preset's or the file's; on resume only `iterations` may change (a different seed is refused)."""
    from meld_core.config.presets import preset_config

    rd = RunDir(run_dir)
    overrides = {k: v for k, v in (("num_iterations", iterations), ("seed", seed)) if v is not None}
    if resume and rd.exists():
        config = load_run_config(rd)
        if seed is not None and seed != config.train.seed:
            raise RunDirError(f"{rd.root} was trained with seed {config.train.seed}; a resumed run keeps it "
                              f"(drop --seed {seed}, or start a new run directory)")
        if iterations is not None:
            config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                           num_iterations=iterations))
        return config
    if config_file:
        import yaml

        path = Path(config_file)
        if not path.is_file():
            raise RunDirError(f"run config {path} does not exist (give a RunConfig YAML, e.g. a run's "
                              "config.yaml)")
        try:
            config = config_from_dict(RunConfig, yaml.safe_load(path.read_text()) or {})
        except (TypeError, ValueError, yaml.YAMLError) as exc:
            raise RunDirError(f"{path} is not a valid run config: {exc}") from None
        return dataclasses.replace(config, train=dataclasses.replace(config.train, **overrides))
    if env is None:
        raise RunDirError("--env is required (e.g. --env point_nav) unless --resume continues a run or a "
                          "run config file is given")
    offline = str(Path(offline_run).resolve()) if offline_run else None
    return preset_config(env, preset, stage, offline, **overrides)


def task_list(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    return [{"index": t.index, "split": t.split, "params": dict(t.params)} for t in tasks]


def prepare_run_dir(rd: RunDir, config: RunConfig, resume: bool) -> None:
    """Check that `rd` can hold a run of `config`, then create its folders and config.yaml (call it
    while holding `rd.lock()`)."""
    if rd.exists():
        stored = load_run_config(rd)
        if stored.identity() != config.identity():
            raise ConfigMismatchError(
                f"{rd.root} holds a run with a different configuration ({stored.env}, preset "
                f"{stored.preset}); choose another --run-dir, or resume it with its own config "
                f"(`meld train --run-dir {rd.root} --resume`)")
        if not resume:
            raise RunDirError(f"{rd.root} already holds a run; pass --resume to continue it "
                              "or choose another --run-dir")
        if stored.train.num_iterations != config.train.num_iterations:
            logger.info("iteration budget changed from %d to %d", stored.train.num_iterations,
                        config.train.num_iterations)
            rd.write_yaml(rd.config_path, dataclasses.asdict(config))
    elif resume and rd.root.exists() and any(p != rd.lock_path for p in rd.root.iterdir()):
        raise RunDirError(f"{rd.root} is not empty and has no config.yaml; it is not a meld run directory")
    rd.make_dirs()
    if not rd.exists():
        rd.write_yaml(rd.config_path, dataclasses.asdict(config))


def check_spec(config: RunConfig, spec: EnvSpec) -> None:
    if tuple(spec.image_shape) != tuple(config.model.image_shape):
        raise ConfigMismatchError(f"environment images are {spec.image_shape} but the model expects "
                                  f"{config.model.image_shape}; fix model.image_shape in the config")


def check_tasks(rd: RunDir, env: TaskEnv) -> None:
    """Write tasks.json on the first start; later starts must find the same tasks."""
    tasks = {"train": task_list(env.train_tasks), "eval": task_list(env.eval_tasks)}
    if rd.tasks_path.exists():
        if rd.read_json(rd.tasks_path) != json.loads(json.dumps(tasks)):
            raise ConfigMismatchError(
                f"the environment's tasks differ from {rd.tasks_path}; the run was made "
                "with another environment version or task seed")
    else:
        rd.write_json(rd.tasks_path, tasks)


def load_offline(config: RunConfig, env: TaskEnv) -> ReplayStore | None:
    """Stage 2: the stage-1 run's episodes (read-only), checked against this run's train tasks."""
    if not config.offline_run:
        return None
    off = RunDir(config.offline_run)
    if not off.exists():
        raise RunDirError(f"--offline-run {off.root} is not a meld run directory (no config.yaml)")
    off_cfg = load_run_config(off)
    if off_cfg.env != config.env:
        raise ConfigMismatchError(f"offline run {off.root} trained {off_cfg.env!r}, this run trains "
                                  f"{config.env!r}")
    mine = task_list(env.train_tasks)
    theirs = off.read_json(off.tasks_path)["train"] if off.tasks_path.exists() else None
    if theirs is None or json.loads(json.dumps(mine)) != theirs:
        raise ConfigMismatchError(
            f"the train tasks of offline run {off.root} differ from this run's; stage 2 needs the same "
            "environment config and task seed as stage 1 (only episode_length may differ)")
    store = ReplayStore.load(config.replay, len(env.train_tasks), off.episodes_dir)
    if store.total_episodes == 0:
        raise RunDirError(f"offline run {off.root} has no episodes under {off.episodes_dir}")
    frames = next(store.episodes(i)[0].num_frames for i in store.tasks_with_data())
    if frames < env.spec.episode_length + 1:
        raise ConfigMismatchError(f"offline episodes have {frames} frames, fewer than this run's "
                                  f"{env.spec.episode_length + 1}; use a stage-1 run with longer episodes")
    store.root = None  # read-only: nothing is ever written back into the stage-1 run
    logger.info("offline data: %d episodes from %s", store.total_episodes, off.root)
    return store


def initial_weights(init_from: str | Path) -> dict[str, Any]:
    """The agent state a run starts from (`RunConfig.init_from`): that run's best checkpoint, else its
    newest."""
    rd = RunDir(init_from)
    if not rd.exists():
        raise RunDirError(f"init_from {rd.root} is not a meld run directory (no config.yaml)")
    path = rd.best_checkpoint_path if rd.best_checkpoint_path.is_file() else None
    state = rd.load_checkpoint(path)
    logger.info("initial network weights from %s (%s, %d env steps)", rd.root,
                path.name if path else "newest checkpoint", state["counters"]["env_steps"])
    return state["agent"]


def owed_iterations(replay: ReplayStore, since_iteration: int, episodes_per_trial: int,
                    trials_per_iteration: int) -> list[int]:
    """Env steps of each training iteration that was collected but never trained (a kill or a stop
    between its collection and the checkpoint after it), oldest first.

    Train-phase episodes carry the iteration they were collected for and their trial (the id of the
    trial's first episode). An iteration from `since_iteration` on (the checkpoint's count) whose
    trials are all complete is owed its gradient steps; an unfinished trial stays as data only.
    """
    trials: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for task in replay.tasks_with_data():
        for ep in replay.episodes(task):
            meta = ep.meta
            if meta.get("phase") == "train" and "trial" in meta and meta["iteration"] >= since_iteration:
                trials[int(meta["iteration"])][int(meta["trial"])].append(ep.num_steps)
    owed = []
    for iteration in sorted(trials):
        complete = [sum(steps) for steps in trials[iteration].values() if len(steps) == episodes_per_trial]
        if len(complete) >= trials_per_iteration:
            owed.append(sum(complete[:trials_per_iteration]))
    return owed


def load_run_agent(run_dir: str | Path, *, checkpoint: str | Path | None = None, device: str | None = None,
                   env_factory: Callable[[RunConfig], TaskEnv] | None = None,
                   ) -> tuple[RunDir, RunConfig, dict[str, Any], TaskEnv, Any]:
    """A run's config, checkpoint state, a fresh env and the agent restored from the checkpoint
    (a file, "best" (checkpoints/best.pt) or "latest"; default: the run's latest). The caller closes
    the env."""
    from meld_core.train.trainer import default_agent_factory, default_env_factory

    rd = RunDir(run_dir).require()
    config = load_run_config(rd)
    if device is not None:
        config = dataclasses.replace(config, device=dataclasses.replace(config.device, device=device))
    state = rd.load_checkpoint(rd.resolve_checkpoint(checkpoint))
    env = (env_factory or default_env_factory)(config)
    try:
        agent = default_agent_factory(config, env.spec)
        try:
            agent.load_state_dict(state["agent"])
        except Exception as exc:
            raise CheckpointError(f"checkpoint does not fit this run's agent ({exc})") from None
    except BaseException:
        env.close()
        raise
    return rd, config, state, env, agent
