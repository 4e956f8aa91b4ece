"""Learning benchmark, every task family: MELD (both stages of the sparse recipe) against the same agent
without reward input (SLAC-like), and for the WidowX a state-based SAC rung, on held-out tasks.

    python bench/learn.py --env widowx_insertion --variants meld_dense,baseline --env-steps 20000 \
        --out runs/bench_wx
    python bench/learn.py --env widowx_insertion --variants meld_two_stage \
        --offline-run runs/bench_wx/meld_dense --env-steps 60000 --rounds 10 --out runs/bench_wx_stage2
    python bench/learn.py --env point_nav --variants meld_dense --minutes 35 --out runs/bench_point

Each variant trains the env's `--preset` (default `small`, with `--set section.field=value`
overrides, e.g. `--set sac.gamma=0.97 --set env_config.episode_length=40`) in its own process (one
torch thread each, so two variants fit 2 cores) until `--env-steps` training env steps or `--minutes`
of wall clock, whichever comes first. A run directory resumes: the same command continues it (the
budget counts from the run's start: env steps in total, minutes in this call). Variants:

- `meld_dense`: stage 1, the posterior sees the dense reward;
- `meld_sparse`: the posterior sees only the sparse reward (decoder and critic: dense);
- `meld_two_stage`: stage 2 of the sparse recipe: `meld_sparse` plus whole episodes of a stage-1
  run (`--offline-run`, e.g. an earlier `meld_dense`) in its batches;
- `baseline`: reward_input "none" (SLAC-like: the belief cannot know the goal);
- `sac_state` (widowx_insertion): rung (a) of the learning ladder, plain SAC on privileged state
  (joint positions and velocities, plug tip, goal port minus plug tip, both z axes; no images) with
  the dense reward: are actions, episode length and reward learnable in the budget?

Afterwards every MELD variant's newest checkpoint is meta-tested on all held-out tasks for `--rounds`
rounds (2-episode trials, policy mean, the posterior seeing the variant's own reward), and so is its
best checkpoint (chosen on train-task validation; the held-out tasks never choose it). The learning
curves (success per episode of the trial vs env steps, with the target line) go to
OUT/learning_curve.png and one JSON line with the figures is printed. Not part of CI.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

MELD_VARIANTS = {  # name -> (stage, reward_input)
    "meld_dense": ("dense", "dense"),
    "meld_sparse": ("sparse", "sparse"),
    "meld_two_stage": ("sparse", "sparse"),
    "baseline": ("dense", "none"),
}
VARIANTS = (*MELD_VARIANTS, "sac_state")


def parse_sets(items: list[str]) -> dict[str, object]:
    """--set section.field=value (YAML value) -> {"section.field": value}."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set {item!r}: want SECTION.FIELD=VALUE, e.g. sac.gamma=0.97")
        out[key] = yaml.safe_load(value)
    return out


def variant_config(env: str, preset: str, name: str, seed: int, sets: dict, offline_run: str | None,
                   eval_every: int, device: str, init_from: str | None = None):
    """The RunConfig of a MELD variant: the preset's stage, the variant's reward input, the overrides."""
    from meld_core.config import RunConfig, config_from_dict
    from meld_core.config.presets import preset_config

    stage, reward_input = MELD_VARIANTS[name]
    cfg = preset_config(env, preset, stage, seed=seed, num_iterations=10_000_000, eval_interval=eval_every,
                        checkpoint_interval=eval_every)
    d = dataclasses.asdict(cfg)
    d["model"]["reward_input"] = reward_input
    d["device"].update(device=device, num_threads=1)
    if name == "meld_two_stage":
        d["offline_run"] = str(Path(offline_run).resolve())
    if init_from:
        d["init_from"] = str(Path(init_from).resolve())
    for key, value in sets.items():
        section, _, field = key.partition(".")
        if section not in d or not isinstance(d[section], dict):
            raise SystemExit(f"--set {key}: unknown section {section!r}; one of env_config, model, sac, "
                             "replay, device, train")
        d[section][field] = value
    if "env_config.image_size" in sets:  # the model sees what the env renders
        size = int(sets["env_config.image_size"])
        height = 2 * size if env == "widowx_insertion" else size
        d["model"]["image_shape"] = [height, size, 3]
    return config_from_dict(RunConfig, d)


def train_meld(name: str, out: str, env: str, preset: str, minutes: float, env_steps: int | None,
               eval_every: int, seed: int, sets: dict, offline_run: str | None, device: str,
               init_from: str | None) -> None:
    import torch

    torch.set_num_threads(1)
    from meld_core.train.hooks import TrainerHooks
    from meld_core.train.trainer import run_training

    cfg = variant_config(env, preset, name, seed, sets, offline_run, eval_every, device, init_from)
    deadline = time.monotonic() + minutes * 60.0

    class Budget(TrainerHooks):
        def _check(self, trainer):
            over_steps = env_steps is not None and trainer.counters.env_steps >= env_steps
            if time.monotonic() > deadline or over_steps:
                trainer.request_stop()

        def on_iteration(self, trainer):
            self._check(trainer)

        def on_gradient_step(self, trainer, kind, metrics):
            if time.monotonic() > deadline:
                trainer.request_stop()

    run_dir = Path(out) / name
    run_training(cfg, run_dir, resume=(run_dir / "config.yaml").exists(), hooks=[Budget()],
                 progress_bars=False)


# --- rung (a): SAC on privileged state ---------------------------------------------------------


def privileged_state(env) -> Any:
    """Joint positions and velocities, plug tip, (goal port - plug tip) x 10, port and plug z axes."""
    import numpy as np

    q, qd = env.joint_state()
    plug, port = env.plug_pose(), env.goal_port_pose()
    return np.concatenate([q, qd, plug[:3, 3], 10.0 * (port[:3, 3] - plug[:3, 3]), port[:3, 2],
                           plug[:3, 2]]).astype(np.float32)


def train_sac_state(out: str, minutes: float, env_steps: int | None, seed: int, sets: dict,
                    eval_every_steps: int = 2000) -> None:
    """Plain SAC (meld_core.algo.sac, 2x256, batch 256) on privileged state with the dense reward,
    one update per env step after 2 000 random steps; held-out success (final frame, policy mean)
    every `eval_every_steps`. Rendering is skipped: only `step_velocity` and the reward code run."""
    import numpy as np
    import torch

    from meld_core.algo.sac import SAC, Transitions
    from meld_core.config import SACConfig, config_from_dict
    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
    from meld_core.robot.reward import insertion_reward

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env_cfg = config_from_dict(WidowXInsertionConfig, {k.split(".", 1)[1]: v for k, v in sets.items()
                                                       if k.startswith("env_config.")})
    env = WidowXInsertionEnv(env_cfg, seed=seed)
    sac_cfg = SACConfig(actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=256, gamma=0.95,
                        initial_alpha=0.1)
    dim, A, T = privileged_state(env).size, env.spec.action_dim, env_cfg.episode_length
    sac = SAC(sac_cfg, dim, A, device=torch.device("cpu"))
    buf = {k: [] for k in ("s", "a", "r", "s2")}

    def episode(task, policy) -> tuple[bool, float]:
        env.set_task(task)
        env.reset()
        s, ret, success = privileged_state(env), 0.0, False
        for _ in range(T):
            a = policy(s)
            env.step_velocity(np.clip(a, -1, 1) * env_cfg.action_scale)
            dense, _, success, _ = insertion_reward(env.plug_pose(), env.goal_port_pose(), env_cfg.reward)
            s2 = privileged_state(env)
            if policy is not greedy:
                for k, v in zip(("s", "a", "r", "s2"), (s, a, dense, s2)):
                    buf[k].append(v)
            s, ret = s2, ret + dense
        return bool(success), ret

    def explore(s):
        if len(buf["s"]) < 2000:
            return rng.uniform(-1, 1, A).astype(np.float32)
        with torch.no_grad():
            return sac.actor(torch.from_numpy(s)[None])[0].numpy()

    def greedy(s):
        with torch.no_grad():
            return sac.actor(torch.from_numpy(s)[None], deterministic=True)[0].numpy()

    def update():
        idx = rng.integers(len(buf["s"]), size=sac_cfg.batch_size)
        get = lambda k: torch.as_tensor(np.asarray([buf[k][i] for i in idx], np.float32))  # noqa: E731
        sac.update(Transitions(belief=get("s"), action=get("a"), reward=get("r"), next_belief=get("s2")))

    run_dir = Path(out) / "sac_state"
    run_dir.mkdir(parents=True, exist_ok=True)
    history, start, steps, next_eval = [], time.monotonic(), 0, eval_every_steps
    while time.monotonic() - start < minutes * 60 and (env_steps is None or steps < env_steps):
        episode(env.train_tasks[int(rng.integers(len(env.train_tasks)))], explore)
        for _ in range(T if len(buf["s"]) >= 2000 else 0):
            update()
        steps += T
        if steps >= next_eval:
            next_eval += eval_every_steps
            results = [episode(task, greedy) for task in env.eval_tasks]
            history.append({"env_steps": steps, "minutes": round((time.monotonic() - start) / 60, 2),
                            "success": float(np.mean([r[0] for r in results])),
                            "dense_return": float(np.mean([r[1] for r in results]))})
            (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    env.close()


def run_variant(name: str, args: argparse.Namespace, sets: dict) -> None:
    if name == "sac_state":
        train_sac_state(args.out, args.minutes, args.env_steps, args.seed, sets)
    else:
        train_meld(name, args.out, args.env, args.preset, args.minutes, args.env_steps, args.eval_every,
                   args.seed, sets, args.offline_run, args.device, args.init_from)


def meta_test_figures(result) -> dict:
    return {"success_per_position": [round(s, 3) for s in result.success_per_position],
            "reached_per_position": [round(s, 3) for s in result.reached_per_position],
            "trials": len(result.trials)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", required=True, choices=("point_nav", "widowx_insertion"))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", default="meld_two_stage,baseline", help=f"comma list of {list(VARIANTS)}")
    ap.add_argument("--minutes", type=float, default=600.0, help="wall-clock budget of this call per variant")
    ap.add_argument("--env-steps", type=int, help="training env-step budget per variant (run total)")
    ap.add_argument("--eval-every", type=int, default=25, help="iterations between evaluations")
    ap.add_argument("--rounds", type=int, default=3, help="final meta-test rounds over the held-out tasks")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smooth", type=int, default=5, help="learning curve: trailing mean of this many evals")
    ap.add_argument("--device", default="cpu", help="learner device of every MELD variant: cpu, cuda, auto")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override a config field, e.g. sac.gamma=0.97 or env_config.episode_length=40")
    ap.add_argument("--offline-run", help="meld_two_stage: the stage-1 run whose episodes are offline data")
    ap.add_argument("--init-from", help="MELD variants: start from this run's networks (e.g. stage 1's)")
    ap.add_argument("--no-meta-test", action="store_true", help="train only (e.g. a stage 1 continued later)")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or ("sac_state" in names and args.env != "widowx_insertion"):
        print(f"unknown variants {unknown} (sac_state is widowx_insertion only); choose from "
              f"{list(VARIANTS)}", file=sys.stderr)
        return 2
    sets = parse_sets(args.set)
    offline_ok = args.offline_run is not None and (Path(args.offline_run) / "episodes").is_dir()
    if "meld_two_stage" in names and not offline_ok:
        print("meld_two_stage needs --offline-run DIR (a stage-1 run with episodes/)", file=sys.stderr)
        return 2
    for name in names:  # fail on a bad override before anything starts
        if name in MELD_VARIANTS:
            variant_config(args.env, args.preset, name, args.seed, sets, args.offline_run, args.eval_every,
                           args.device, args.init_from)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run_variant, name=n, args=(n, args, sets)) for n in names]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    train_wall = time.monotonic() - t0
    load_after = os.getloadavg()

    from meld_core.train.evaluation import evaluate_run
    from meld_core.train.media import plot_learning_curves
    from meld_core.train.rundir import RunDir

    curves, figures = {}, {}
    for n in names:
        if n == "sac_state":
            rows = json.loads((out / n / "history.json").read_text())
            curves[f"{n} (privileged state), final frame"] = ([r["env_steps"] for r in rows],
                                                               [r["success"] for r in rows])
            figures[n] = {"history": rows}
            continue
        rows = RunDir(out / n).eval_history()
        for position in (1, 0):
            curves[f"{n}, episode {position + 1}"] = ([r["counters"]["env_steps"] for r in rows],
                                                      [r["success_per_position"][position] for r in rows])
        progress = json.loads((out / n / "progress.json").read_text())
        figures[n] = {"env_steps": progress["env_steps"], "iterations": progress["iteration"],
                      "model_steps": progress["model_steps"], "ac_steps": progress["ac_steps"]}
        if args.no_meta_test:
            continue
        result, _ = evaluate_run(out / n, rounds=args.rounds, video_trials=2)
        figures[n]["newest"] = meta_test_figures(result)
        best = RunDir(out / n).best_info()
        if best is not None:  # the checkpoint chosen on train tasks; run last, so eval/ shows it
            result, _ = evaluate_run(out / n, rounds=args.rounds, video_trials=2, checkpoint="best")
            validation = [round(v, 3) for v in best["validation_success_per_position"]]
            figures[n]["best_checkpoint"] = {**meta_test_figures(result),
                                             "env_steps": best["counters"]["env_steps"],
                                             "validation_success_per_position": validation}
    plot = plot_learning_curves(out / "learning_curve.png", curves, "env steps",
                                f"success (evaluations every {args.eval_every} iterations, held-out tasks)",
                                f"{args.env}: success per episode of the trial", smooth=args.smooth,
                                target=0.9)
    line = {"bench": "learn", "env": args.env, "preset": args.preset, "train_wall_s": round(train_wall, 1),
            "minutes_budget": args.minutes, "env_steps_budget": args.env_steps, "cpu_count": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after], "sets": sets, "variants": figures,
            "plot": str(plot)}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
