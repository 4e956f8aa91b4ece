"""Learning benchmark: MELD vs the same agent without reward input (SLAC-like) on held-out goals.

    PYTHONPATH=. python bench/learn_point_nav.py --minutes 28 --out runs/bench_point_nav

Each variant trains the `small` point_nav preset in its own process (1 torch thread each, so two
variants fit 2 cores) for a wall-clock budget, evaluating on the 10 held-out goals every
`--eval-every` iterations (2-episode trials, policy mean). Variants:

- `meld_sparse`: the posterior sees only the sparse reward (decoder and critic: dense), so the
  test-time signal is sparse -- the issue's target;
- `meld_dense`:  the posterior sees the dense reward (stage 1 of the sparse recipe);
- `baseline`:    reward_input "none" (SLAC-like: the belief cannot know the goal);
- `meld_two_stage`: stage 2 of the sparse recipe: like `meld_sparse`, plus whole episodes of a
  stage-1 run (`--offline-run`, e.g. an earlier bench's `meld_dense`) mixed into its batches.

Afterwards every variant's last checkpoint is meta-tested on all held-out goals for `--rounds`
rounds, and so is its best checkpoint (`best_checkpoint` in the JSON: the one that did best on the
preset's validation trials on train goals; the held-out goals never choose it); the learning
curve (success of each episode of the trial vs env steps, raw and as a trailing mean over
`--smooth` evaluations) is written to OUT/learning_curve.png and one JSON line
with the figures is printed. Not part of CI.
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

VARIANTS = {
    "meld_sparse": ("sparse", "dense"),
    "meld_dense": ("dense", "dense"),
    "baseline": ("none", "dense"),
    "meld_two_stage": ("sparse", "dense"),
}


def train_variant(name: str, out: str, minutes: float, eval_every: int, seed: int, image_size: int,
                  overrides: dict) -> None:
    import torch

    torch.set_num_threads(1)
    from meld_core.config.presets import preset_config
    from meld_core.train.hooks import TrainerHooks
    from meld_core.train.trainer import run_training

    reward_input, reward_target = VARIANTS[name]
    train = {key: overrides[flag] for flag, key in (("model_ratio", "model_train_ratio"),
                                                     ("ac_ratio", "ac_train_ratio"))
             if overrides[flag] is not None}
    stage = "sparse" if reward_input == "sparse" else "dense"
    cfg = preset_config("point_nav", "small", stage, seed=seed, num_iterations=100_000,
                        eval_interval=eval_every, checkpoint_interval=eval_every, video_trials=1, **train)
    if overrides.get("train_set"):
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides["train_set"]))
    if overrides.get("sac_set"):
        cfg = dataclasses.replace(cfg, sac=dataclasses.replace(cfg.sac, **overrides["sac_set"]))
    if name == "meld_two_stage":
        cfg = dataclasses.replace(cfg, offline_run=overrides["offline_run"])
    if overrides.get("offline_ratio") is not None:
        replay = dataclasses.replace(cfg.replay, offline_ratio=overrides["offline_ratio"])
        cfg = dataclasses.replace(cfg, replay=replay)
    model = dataclasses.replace(cfg.model, reward_input=reward_input, reward_target=reward_target)
    if overrides.get("model_set"):
        model = dataclasses.replace(model, **overrides["model_set"])
    env_config = {**cfg.env_config, **overrides.get("env_set", {})}
    if image_size != env_config["image_size"]:
        env_config["image_size"] = image_size
        model = dataclasses.replace(model, image_shape=(image_size, image_size, 3))
    cfg = dataclasses.replace(cfg, model=model, env_config=env_config, preset=f"small/bench:{name}",
                              device=dataclasses.replace(cfg.device, device=overrides["device"],
                                                         num_threads=1))
    deadline = time.monotonic() + minutes * 60

    class Budget(TrainerHooks):
        def _check(self, trainer):
            if time.monotonic() > deadline:
                trainer.request_stop()

        def on_episode(self, trainer, episode):
            self._check(trainer)

        def on_gradient_step(self, trainer, kind, metrics):
            self._check(trainer)

    run_training(cfg, Path(out) / name, resume=(Path(out) / name / "config.yaml").exists(), hooks=[Budget()],
                 progress_bars=False)


def meta_test_figures(result) -> dict:
    return {"success_per_position": [round(s, 3) for s in result.success_per_position],
            "reached_per_position": [round(s, 3) for s in result.reached_per_position],
            "trials": len(result.trials)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench_point_nav")
    ap.add_argument("--minutes", type=float, default=28.0, help="training wall-clock budget per variant")
    ap.add_argument("--variants", default="meld_sparse,baseline", help=f"comma list of {sorted(VARIANTS)}")
    ap.add_argument("--eval-every", type=int, default=10, help="iterations between evaluations")
    ap.add_argument("--rounds", type=int, default=3, help="final meta-test rounds over the 10 held-out goals")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smooth", type=int, default=10, help="learning curve: trailing mean of this many evals")
    ap.add_argument("--model-ratio", type=float, help="override the preset's model_train_ratio")
    ap.add_argument("--ac-ratio", type=float, help="override the preset's ac_train_ratio")
    ap.add_argument("--initial-alpha", type=float, help="override the SAC initial temperature")
    ap.add_argument("--gamma", type=float, help="override the SAC discount")
    ap.add_argument("--td-reward", choices=("current", "next"), help="override the critic's reward frame")
    ap.add_argument("--z2-transition", choices=("stochastic", "gru"), help="override the z2 transition")
    ap.add_argument("--offline-ratio", type=float, help="meld_two_stage: whole-episode swap rate")
    ap.add_argument("--device", default="cpu", help="learner device of every variant: cpu, cuda or auto")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a ModelConfig field, e.g. latent2_size=32 (repeatable)")
    ap.add_argument("--sac-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a SACConfig field, e.g. td_across_resets=true (repeatable)")
    ap.add_argument("--env-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a PointNavConfig field, e.g. num_train_tasks=100 (repeatable)")
    ap.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a TrainConfig field, e.g. init_collect_trials_per_task=1 (repeatable)")
    ap.add_argument("--offline-run", help="meld_two_stage: the stage-1 run whose episodes are offline data")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}", file=sys.stderr)
        return 2
    import yaml

    from meld_core.config import ModelConfig, SACConfig, TrainConfig
    from meld_core.envs.point_nav import PointNavConfig

    sets = {}
    for flag, items, fields in (("--model-set", args.model_set, ModelConfig),
                                ("--sac-set", args.sac_set, SACConfig),
                                ("--env-set", args.env_set, PointNavConfig),
                                ("--train-set", args.train_set, TrainConfig)):
        sets[flag] = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or key not in {f.name for f in dataclasses.fields(fields)}:
                print(f"{flag} {item!r}: want KEY=VALUE, KEY a {fields.__name__} field", file=sys.stderr)
                return 2
            sets[flag][key] = yaml.safe_load(value)
    model_set, sac_set = sets["--model-set"], sets["--sac-set"]
    if args.z2_transition is not None:
        model_set["z2_transition"] = args.z2_transition
    for key in ("initial_alpha", "gamma", "td_reward"):
        if getattr(args, key) is not None:
            sac_set[key] = getattr(args, key)
    overrides = {"model_ratio": args.model_ratio, "ac_ratio": args.ac_ratio,
                 "offline_run": args.offline_run, "offline_ratio": args.offline_ratio,
                 "model_set": model_set, "sac_set": sac_set, "env_set": sets["--env-set"],
                 "train_set": sets["--train-set"], "device": args.device}
    offline_ok = args.offline_run is not None and (Path(args.offline_run) / "episodes").is_dir()
    if "meld_two_stage" in names and not offline_ok:
        print("meld_two_stage needs --offline-run DIR (a stage-1 run with episodes/)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=train_variant, name=n,
                         args=(n, str(out), args.minutes, args.eval_every, args.seed, args.image_size,
                               overrides))
             for n in names]
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
        rows = RunDir(out / n).eval_history()
        for position in (1, 0):
            curves[f"{n}, episode {position + 1}"] = ([r["counters"]["env_steps"] for r in rows],
                                                      [r["success_per_position"][position] for r in rows])
        progress = json.loads((out / n / "progress.json").read_text())
        result, _ = evaluate_run(out / n, rounds=args.rounds, video_trials=2)
        figures[n] = {
            **meta_test_figures(result),
            "env_steps": progress["env_steps"], "iterations": progress["iteration"],
            "model_steps": progress["model_steps"], "ac_steps": progress["ac_steps"],
            "best_eval_success_1": max((r["success_per_position"][1] for r in rows), default=None),
        }
        best = RunDir(out / n).best_info()
        if best is not None:  # the checkpoint chosen on train tasks; run last, so eval/ shows it
            result, _ = evaluate_run(out / n, rounds=args.rounds, video_trials=2, checkpoint="best")
            validation = [round(v, 3) for v in best["validation_success_per_position"]]
            figures[n]["best_checkpoint"] = {**meta_test_figures(result),
                                             "env_steps": best["counters"]["env_steps"],
                                             "validation_success_per_position": validation}
    plot = plot_learning_curves(out / "learning_curve.png", curves, "env steps",
                                f"success ({args.eval_every}-iteration evals, 10 held-out goals)",
                                "point_nav: success per episode of the trial", smooth=args.smooth)
    line = {"bench": "learn_point_nav", "train_wall_s": round(train_wall, 1), "minutes_budget": args.minutes,
            "cpu_count": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after], "image_size": args.image_size,
            "overrides": overrides,
            "variants": figures, "plot": str(plot)}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
