"""Setting a run up: which config it runs, whether the run directory fits it, its offline data, and
what a resumed run still owes.

    config = resolve_run_config("runs/wx", resume=False, env="widowx_insertion", preset="small",
                                overrides={"sac.batch_size": 128})
    check_run_dir(RunDir("runs/wx"), config, resume=False)       # reads only
    ...                                                           # build env and agent (Trainer)
    prepare_run_dir(RunDir("runs/wx"), config, task_lists(env))   # now write config.yaml, tasks.json

One `resolve_run_config` serves `meld train` and the ROS agent node: a resumed run continues with
its stored config (only the iteration budget, the device and the mode may change), otherwise the
config comes from a YAML file (`run_config`, e.g. another run's config.yaml) or from a preset, with
dotted overrides on top. The identity of a run is its config without the device, the iteration budget
and the mode (`RunConfig.identity`):
a run directory refuses a config of another identity (the message lists the keys that differ), and a
stage-2 run refuses offline data whose train tasks differ from its own. Nothing is written to the
run directory until the trainer has built its environment and agent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meld_core.algo.replay import ReplayStore
from meld_core.config import RunConfig, config_diff, config_from_dict, format_diff
from meld_core.envs.base import EnvSpec, Task, TaskEnv
from meld_core.train.rundir import ROLE_LOCKS, CheckpointError, RunDir, RunDirError

logger = logging.getLogger(__name__)


class ConfigMismatchError(RunDirError):
    """The run directory (or offline run) belongs to a different configuration."""


class ResumeConflictError(ConfigMismatchError):
    """A resumed run was asked to change what makes it the run it is (its `RunConfig.identity()`)."""


def load_run_config(run_dir: RunDir) -> RunConfig:
    data = run_dir.read_yaml(run_dir.config_path)
    try:
        config = config_from_dict(RunConfig, data)
        config.build_env_config()
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{run_dir.config_path} is not a valid run config: {exc}") from None
    return config


def load_config_file(path: str | Path) -> RunConfig:
    """A RunConfig YAML (e.g. a run's config.yaml), checked field by field."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"run config {path} does not exist (give a RunConfig YAML, e.g. a run's "
                          "config.yaml)")
    try:
        config = config_from_dict(RunConfig, yaml.safe_load(path.read_text()))
        config.build_env_config()
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise RunDirError(f"{path} is not a valid run config: {exc}") from None
    return config


def resolve_run_config(
    run_dir: str | Path,
    *,
    resume: bool,
    env: str | None = None,
    preset: str | None = None,
    stage: str | None = None,
    offline_run: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The config a run trains with; `meld train` and the ROS agent node both call this.

    A new run is `described_config(...)` (a RunConfig YAML, or a preset of an env at a stage) with
    `overrides` applied: dotted keys such as {"sac.batch_size": 128, "env_config.episode_length": 30,
    "train.seed": 2}, validated like a YAML file.

    A resumed run (`resume` and `run_dir` holds a run) continues with its stored config plus the
    overrides. Its identity (`RunConfig.identity()`: everything but the device and the iteration
    budget) cannot change: when the overrides, or an env/preset/stage/offline run/file that describes
    another run, would change it, ResumeConflictError lists every key that differs with both values.
    The same command again with resume is accepted.
    """
    overrides = dict(overrides or {})
    asked = described_config(run_dir, resume=resume, env=env, preset=preset, stage=stage,
                             offline_run=offline_run, config_file=config_file).with_overrides(overrides)
    rd = RunDir(run_dir)
    if not (resume and rd.exists()):
        return asked
    stored = load_run_config(rd)
    diff = config_diff(stored.identity(), asked.identity())
    if diff:
        raise ResumeConflictError(
            f"a resumed run keeps its configuration, but this command would change it: "
            f"{format_diff(diff, 'run', 'command')}. Only the iteration budget (--iterations), the mode "
            f"(--mode) and the device may change: drop the other settings to resume {rd.root}, or start a "
            "new run in another --run-dir")
    return stored.with_overrides(overrides)


def described_config(
    run_dir: str | Path,
    *,
    resume: bool,
    env: str | None = None,
    preset: str | None = None,
    stage: str | None = None,
    offline_run: str | None = None,
    config_file: str | Path | None = None,
) -> RunConfig:
    """What a command describes before its overrides: the stored run when it resumes one without
    naming anything else; otherwise the RunConfig YAML `config_file`, or the `preset` (default
    "small", or the stored run's) of `env` (default: the stored run's) at `stage` (default "dense";
    "sparse" with `offline_run`)."""
    from meld_core.config.presets import PRESETS

    if config_file and any(v is not None for v in (env, preset, stage)):
        raise ValueError("a run config file gives the whole configuration: drop --env, --preset and "
                         "--stage (or the file), and change single settings with overrides such as "
                         "--sac.batch_size=128")
    rd = RunDir(run_dir)
    stored = load_run_config(rd) if resume and rd.exists() else None
    if stored is not None and all(v is None for v in (env, preset, stage, offline_run, config_file)):
        return stored
    if stored is not None and not config_file and (preset or stored.preset) not in PRESETS:
        raise ResumeConflictError(f"{rd.root} was made from a run config file, not a preset: resume it "
                                  "without --env, --preset, --stage and --offline-run")
    if not config_file and env is None and stored is None:
        if resume:
            raise RunDirError(f"{rd.root} holds no run to resume (no config.yaml); start one with --env "
                              "(e.g. --env point_nav) or --config")
        raise RunDirError("--env is required (e.g. --env point_nav) unless --resume continues a run or a "
                          "run config file is given")
    if stored is not None:
        env, preset = env or stored.env, preset or stored.preset
    return _described(env, preset or "small", stage, offline_run, config_file)


def _described(env: str | None, preset: str, stage: str | None, offline_run: str | None,
               config_file: str | Path | None) -> RunConfig:
    """The config a file, or a preset of an env at a stage, describes (before overrides)."""
    from meld_core.config.presets import preset_config

    offline = str(Path(offline_run).resolve()) if offline_run else None
    if config_file:
        config = load_config_file(config_file)
        return dataclasses.replace(config, offline_run=offline) if offline else config
    return preset_config(env, preset, stage or ("sparse" if offline else "dense"), offline)


def task_lists(env: TaskEnv) -> dict[str, list[dict[str, Any]]]:
    """What tasks.json holds: the train and held-out task lists of `env`."""
    return json.loads(json.dumps({"train": task_list(env.train_tasks), "eval": task_list(env.eval_tasks)}))


def task_list(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    return [{"index": t.index, "split": t.split, "params": dict(t.params)} for t in tasks]


def check_run_dir(rd: RunDir, config: RunConfig, resume: bool) -> None:
    """Raise unless `rd` can hold a run of `config`; reads only (a failed start leaves nothing; call it
    while holding `rd.lock()`)."""
    if rd.exists():
        stored = load_run_config(rd)
        diff = config_diff(stored.identity(), config.identity())
        if diff:
            raise ConfigMismatchError(
                f"{rd.root} holds a run with a different configuration "
                f"({format_diff(diff, 'stored', 'new')}); "
                f"choose another --run-dir, or resume it with its own config "
                f"(`meld train --run-dir {rd.root} --resume`)")
        if not resume:
            raise RunDirError(f"{rd.root} already holds a run; pass --resume to continue it "
                              "or choose another --run-dir")
    elif resume and rd.root.exists() and any(p.name not in ROLE_LOCKS.values() for p in rd.root.iterdir()):
        raise RunDirError(f"{rd.root} is not empty and has no config.yaml; it is not a meld run directory")


def prepare_run_dir(rd: RunDir, config: RunConfig, tasks: dict[str, Any],
                    spec: EnvSpec | None = None) -> None:
    """Create the run's folders, write config.yaml (new, or the changed budget or device of a resumed
    run), tasks.json and env.json (`spec`, for processes without the environment: `RecordedEnv`);
    called once everything that can fail at the start has succeeded."""
    rd.make_dirs()
    if rd.exists():
        changed = config_diff(dataclasses.asdict(load_run_config(rd)), dataclasses.asdict(config))
        if changed:
            logger.info("config.yaml updated: %s", format_diff(changed, "was", "now"))
            rd.write_yaml(rd.config_path, dataclasses.asdict(config))
    else:
        rd.write_yaml(rd.config_path, dataclasses.asdict(config))
    if not rd.tasks_path.exists():
        rd.write_json(rd.tasks_path, tasks)
    if spec is not None and (not rd.env_path.exists() or rd.read_json(rd.env_path) != _spec_dict(spec)):
        rd.write_json(rd.env_path, _spec_dict(spec))


def _spec_dict(spec: EnvSpec) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(spec)))


@dataclass(frozen=True)
class RecordedEnv:
    """What a process that does not run the environment knows of it: its spec and task lists, as the
    process that does recorded them in the run directory (env.json, tasks.json). It cannot step."""

    spec: EnvSpec
    train_tasks: tuple[Task, ...]
    eval_tasks: tuple[Task, ...]

    @classmethod
    def read(cls, rd: RunDir) -> RecordedEnv:
        if not (rd.env_path.is_file() and rd.tasks_path.is_file()):
            raise RunDirError(f"{rd.root} has no env.json/tasks.json yet: the process that runs the "
                              "environment (the async actor) writes them when it starts")
        spec = rd.read_json(rd.env_path)
        tasks = rd.read_json(rd.tasks_path)
        return cls(
            spec=EnvSpec(**{**spec, "image_shape": tuple(spec["image_shape"])}),
            train_tasks=tuple(Task(t["index"], t["split"], t["params"]) for t in tasks["train"]),
            eval_tasks=tuple(Task(t["index"], t["split"], t["params"]) for t in tasks["eval"]),
        )

    def close(self) -> None:
        pass


def check_spec(config: RunConfig, spec: EnvSpec) -> None:
    if tuple(spec.image_shape) != tuple(config.model.image_shape):
        raise ConfigMismatchError(f"environment images are {spec.image_shape} but the model expects "
                                  f"{config.model.image_shape}; fix model.image_shape in the config")


def check_tasks(rd: RunDir, env: TaskEnv) -> None:
    """A resumed run (a run directory with tasks.json) must find the same tasks in its environment."""
    if rd.tasks_path.exists() and rd.read_json(rd.tasks_path) != task_lists(env):
        raise ConfigMismatchError(
            f"the environment's tasks differ from {rd.tasks_path}; the run was made "
            "with another environment version or task seed")


def load_offline(config: RunConfig, env: TaskEnv) -> ReplayStore | None:
    """Stage 2: the stage-1 run's episodes (read-only), checked against this run's train tasks."""
    if not config.offline_run:
        return None
    off = RunDir(config.offline_run)
    if not off.exists():
        raise RunDirError(f"--offline-run {off.root} is not a meld run directory (no config.yaml)")
    off_cfg = load_run_config(off)
    if off_cfg.env != config.env:
        raise ConfigMismatchError(f"offline run {off.root} trained env {off_cfg.env!r}, this run trains "
                                  f"{config.env!r}; give a stage-1 run of the same environment")
    theirs = off.read_json(off.tasks_path)["train"] if off.tasks_path.exists() else None
    if theirs is None or task_lists(env)["train"] != theirs:
        diff = config_diff(dataclasses.asdict(off_cfg.build_env_config()),
                           dataclasses.asdict(config.build_env_config()))
        differ = f" (env_config: {format_diff(diff, 'offline run', 'this run')})" if diff else ""
        raise ConfigMismatchError(
            f"the train tasks of offline run {off.root} differ from this run's{differ}; stage 2 needs the "
            "same environment config and task seed as stage 1 (only episode_length may differ)")
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


def collected_iterations(replay: ReplayStore, since_iteration: int, episodes_per_trial: int,
                         trials_per_iteration: int) -> dict[int, int]:
    """Training iterations from `since_iteration` on whose trials are all stored: iteration -> the
    env steps of its trials.

    Train-phase episodes carry the iteration they were collected for and their trial (the id of the
    trial's first episode); an unfinished trial (a kill or a stop in its middle) stays as data only,
    and its iteration is collected again.
    """
    trials: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for task in replay.tasks_with_data():
        for ep in replay.episodes(task):
            meta = ep.meta
            if meta.get("phase") == "train" and "trial" in meta and meta["iteration"] >= since_iteration:
                trials[int(meta["iteration"])][int(meta["trial"])].append(ep.num_steps)
    done = {}
    for iteration in sorted(trials):
        complete = [sum(steps) for steps in trials[iteration].values() if len(steps) == episodes_per_trial]
        if len(complete) >= trials_per_iteration:
            done[iteration] = sum(complete[:trials_per_iteration])
    return done


def owed_iterations(replay: ReplayStore, since_iteration: int, episodes_per_trial: int,
                    trials_per_iteration: int) -> list[int]:
    """Env steps of each training iteration that was collected but not trained, oldest first: a kill
    or a stop between its collection and the checkpoint after it, or (async mode) the learner's queue.
    `since_iteration` is the number of iterations trained (the checkpoint's count)."""
    done = collected_iterations(replay, since_iteration, episodes_per_trial, trials_per_iteration)
    return list(done.values())


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
