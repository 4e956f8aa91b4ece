"""The `meld` command: everything a user runs without ROS.

    meld --help
    meld info
    meld train --env point_nav --preset smoke --run-dir runs/point_smoke
    meld train --env point_nav --preset smoke --run-dir runs/p2 --sac.batch_size=128 --train.seed=2
    meld eval --run-dir runs/point_smoke --episodes-per-trial 2 --rounds 3
    meld export --run-dir runs/point_smoke --format mcap --out exports/point_smoke

Each subcommand is a `_cmd_<name>(args)` function registered in `build_parser()`. Heavy imports
(torch, mujoco) happen inside the subcommand, so `meld --help` stays instant. Errors a user can fix
are raised as `CliError` and printed as one line with a non-zero exit code. `meld train` takes
every field of the run config as `--SECTION.FIELD=VALUE` (`meld_core.cli_settings`, parsed by tyro
from the config dataclasses).
"""

from __future__ import annotations

import argparse
import logging
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from meld_core import __version__

EXIT_ERROR = 2  # a usage or configuration error a user can fix (one line `meld: error: ...`)
EXIT_STOPPED = 3  # `meld train` stopped by Ctrl-C/SIGTERM before the end of its budget (resumable)
EXIT_ABORTED = 130  # a second Ctrl-C

# `meld train` flags that set one run-config field (also settable as --SECTION.FIELD)
TRAIN_SHORTCUTS = {"iterations": "train.num_iterations", "seed": "train.seed",
                   "threads": "device.num_threads", "device": "device.device", "mode": "train.mode",
                   "init_from": "init_from"}


class CliError(Exception):
    """A user-facing error: printed as `meld: error: <message>` with exit code 2."""


def _cmd_info(args: argparse.Namespace) -> int:
    """Print versions of meld and of the libraries it found."""
    import importlib

    print(f"meld {__version__} (python {platform.python_version()}, {platform.machine()})")
    for name in ("numpy", "torch", "cv2", "mujoco", "av", "serial", "yaml", "tyro"):
        try:
            module = importlib.import_module(name)
            version = getattr(module, "__version__", "?")
            extra = ""
            if name == "torch":
                extra = f", cuda available: {module.cuda.is_available()}"
            print(f"  {name:8s} {version}{extra}")
        except ImportError:
            print(f"  {name:8s} not installed")
    return 0


TRAIN_EPILOG = f"""\
run settings: every field of the run config is a flag --SECTION.FIELD=VALUE (sections model, sac,
replay, device, train, and env_config for the environment's own settings), e.g.
  meld train --env point_nav --preset smoke --run-dir runs/p --sac.batch_size=128 \\
      --env_config.episode_length=30
They start from --config FILE or the preset and are stored in RUN_DIR/config.yaml. A resumed run
keeps its configuration: only --iterations (train.num_iterations), --mode and the device may change.

exit status: 0 the run completed its iterations; {EXIT_ERROR} a usage or configuration error (a new run
leaves nothing behind); {EXIT_STOPPED} stopped by Ctrl-C or SIGTERM before the end (a checkpoint is
written; continue with --resume); {EXIT_ABORTED} aborted by a second Ctrl-C.
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _train_settings(args: argparse.Namespace, settings: list[str], base, help_only: bool) -> dict:
    """Dotted overrides from the --SECTION.FIELD flags and the shortcuts (--iterations, --seed, ...)."""
    from meld_core.cli_settings import parse_settings
    from meld_core.envs.registry import env_config_class

    if base is None:
        what = ("the dataclass defaults; add --env and --preset (or --config, or --run-dir R --resume) "
                "to see the values that run would use and the env's own env_config settings")
    else:
        what = f"{base.env}, preset {base.preset}" + (" (the stored run)" if args.resume else "")
    overrides = parse_settings(
        ["--help"] if help_only else settings, base, prog="meld train [...]",
        description=f"Run settings; defaults: {what}.",
        env_config_class=env_config_class(base.env) if base is not None else None)
    for flag, key in TRAIN_SHORTCUTS.items():
        value = getattr(args, flag)
        if value is not None:
            if key in overrides and overrides[key] != value:
                raise CliError(f"--{flag} and --{key} both set {key}: give one of them")
            overrides[key] = value
    return overrides


def _cmd_train(args: argparse.Namespace) -> int:
    """Meta-train (or resume) a run; Ctrl-C stops cleanly after the running episode with a checkpoint."""
    from meld_core.algo.agent import DeviceError
    from meld_core.bridge.shutdown import StopSignals
    from meld_core.config.presets import UnknownPresetError
    from meld_core.envs.registry import UnknownEnvError
    from meld_core.files import explain_os_error
    from meld_core.train.evaluation import read_latest
    from meld_core.train.hooks import ConsoleProgress
    from meld_core.train.rundir import CheckpointError, RunDir, RunDirError
    from meld_core.train.setup import described_config, resolve_run_config
    from meld_core.train.trainer import run_training

    if args.help:
        print(args.subparser.format_help())
    elif args.run_dir is None:
        raise CliError("--run-dir is required (the run directory, e.g. --run-dir runs/point_smoke)")
    describe = dict(env=args.env, preset=args.preset, stage=args.stage, offline_run=args.offline_run,
                    config_file=args.config)
    try:
        # the config the run would have without settings: their defaults, and what they override
        known = args.env or args.config or (args.resume and args.run_dir)
        base = None
        if known or not args.help:
            base = described_config(args.run_dir or ".", resume=args.resume, **describe)
        try:
            overrides = _train_settings(args, args.settings, base, help_only=args.help)
        except SystemExit as exc:  # tyro printed the help, or a usage error naming the flag and type
            return int(exc.code or 0)
        config = resolve_run_config(args.run_dir, resume=args.resume, **describe, overrides=overrides)
    except (UnknownEnvError, UnknownPresetError, RunDirError, ValueError) as exc:
        raise CliError(str(exc)) from None

    holder: list = []

    def stop() -> None:  # first Ctrl-C/SIGTERM: stop cleanly; a later one aborts (StopSignals)
        from tqdm import tqdm

        if not holder:
            raise KeyboardInterrupt
        tqdm.write("meld: stopping after the running episode or gradient step (Ctrl-C again to abort)",
                   file=sys.stderr)  # above the progress bar
        holder[0].request_stop()

    rd = RunDir(args.run_dir)
    try:
        with StopSignals(stop, same_within_s=0.0):
            trainer = run_training(config, rd.root, resume=args.resume, progress_bars=False,
                                   hooks=[ConsoleProgress(args.status_interval)],
                                   trainer_callback=holder.append)
    except (RunDirError, CheckpointError, DeviceError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # the run directory's disk is full, read-only, ...
        raise CliError(explain_os_error(exc)) from None
    c, t = trainer.counters, trainer.config.train
    if c.phase != "done":
        print(f"meld: stopped at {c.phase} (iteration {c.iteration}/{t.num_iterations}, {c.env_steps} env "
              f"steps, {c.episodes} episodes); resume with: meld train --run-dir {shlex.quote(str(rd.root))} "
              "--resume", file=sys.stderr)
        return EXIT_STOPPED
    print(f"run {rd.root}: done, {c.iteration} iterations, {c.episodes} episodes, {c.env_steps} env steps, "
          f"{c.model_steps} model steps, {c.ac_steps} AC steps")
    if trainer.last_eval is not None:
        latest = read_latest(rd.eval_dir)
        where = f" ({rd.eval_dir / latest['folder']})" if latest else ""
        print(f"evaluation at the end of training{where}:")
        print(trainer.last_eval.table())
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    """Meta-test a run's checkpoint on its held-out tasks and print the success table."""
    from meld_core.algo.agent import DeviceError
    from meld_core.files import explain_os_error
    from meld_core.train.evaluation import evaluate_run
    from meld_core.train.rundir import CheckpointError, RunDirError

    try:
        result, summary = evaluate_run(args.run_dir, episodes_per_trial=args.episodes_per_trial,
                                       rounds=args.rounds, checkpoint=args.checkpoint, device=args.device,
                                       video_trials=args.videos,
                                       deterministic=False if args.stochastic else None, out_dir=args.out)
    except (RunDirError, CheckpointError, DeviceError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(explain_os_error(exc)) from None
    c = summary["counters"]
    print(result.table())
    folder = Path(summary["folder"])
    print(f"(checkpoint {summary['checkpoint']}: iteration {c['iteration']}, {c['env_steps']} env steps; "
          f"posterior input: {result.reward_input} reward; {len(result.trials)} trials; "
          f"written to {folder})")
    if "overview" in summary:
        print(f"paths of every episode: {folder / summary['overview']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """Write a run's episodes as MCAP files (ROS 2 messages) or as a LeRobot dataset."""
    from meld_core.data.run_episodes import ExportError

    try:
        if args.format == "mcap":
            from meld_core.data.mcap_export import McapExportConfig, export_mcap

            config = McapExportConfig(per=args.per, image_format=args.images)
            files = export_mcap(args.run_dir, args.out, config, select=args.episodes)
            print(f"wrote {len(files)} MCAP file(s) to {args.out} (Foxglove; `ros2 bag info FILE`)")
            if args.preview:
                from meld_core.data.preview import render_preview

                print(f"preview of {files[0].name}: {render_preview(files[0], args.preview)}")
        elif args.format == "policy":
            from meld_core.data.policy_export import export_policy

            path = export_policy(args.run_dir, args.out, args.checkpoint or "best")
            size = path.stat().st_size / 1e6
            print(f"wrote the policy of {args.run_dir} ({args.checkpoint or 'best'} checkpoint) to "
                  f"{args.out} ({size:.1f} MB); meta-test it: meld eval --run-dir {args.out}")
        else:
            from meld_core.data.lerobot_export import LeRobotExportConfig, export_lerobot

            if args.preview:
                raise CliError("--preview draws an MCAP file; use it with --format mcap")
            config = LeRobotExportConfig(crf=args.crf)
            out = export_lerobot(args.run_dir, args.out, config, select=args.episodes)
            print(f"wrote a LeRobot dataset (v3.0) to {out}")
    except ImportError as exc:
        raise CliError(f"{exc.name} is missing: install the export extra "
                       "(pip install -e '.[export]')") from None
    except (ExportError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _cmd_rig(args: argparse.Namespace) -> int:
    """Talk to the reset rig without ROS: status, home, move, stop (see hardware/reset_rig/)."""
    from meld_core.hardware.reset_rig import ResetRig, ResetRigConfig, ResetRigError

    try:
        config = ResetRigConfig(port=args.port)
        with ResetRig(config) as rig:
            if args.rig_command == "home":
                state = rig.home(timeout_s=args.timeout)
            elif args.rig_command == "move":
                if args.home:
                    rig.home(timeout_s=args.timeout)
                state = rig.move_to(args.rotation_deg, args.translation_mm, timeout_s=args.timeout)
            elif args.rig_command == "stop":
                state = rig.stop()
            else:
                state = rig.status()
    except (ResetRigError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(f"rig {state.state.lower()}: homed={state.homed} rotation={state.rotation_deg:+.3f} deg "
          f"translation={state.translation_mm:+.3f} mm steps=({state.rotation_steps}, "
          f"{state.translation_steps}) estop={state.estop} last_error={state.error or '-'} "
          f"firmware={state.firmware_version}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meld",
        description="MELD meta-RL from images: train, evaluate and inspect runs (no ROS needed).",
    )
    parser.add_argument("--version", action="version", version=f"meld {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="print versions of meld and its libraries")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="meta-train MELD on a simulated task family (or resume a run)",
                       add_help=False, allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       usage="meld train [-h] --run-dir DIR [--env ENV] [--preset P] [options] "
                             "[--SECTION.FIELD=VALUE ...]",
                       description="Meta-train MELD (warm-up, model pre-training, collect/train iterations,\n"
                                   "periodic evaluation on held-out tasks, checkpoints) into a run "
                                   "directory.",
                       epilog=TRAIN_EPILOG)
    p.add_argument("-h", "--help", action="store_true",
                   help="show this help and every run setting with its default, then exit")
    p.add_argument("--run-dir", metavar="DIR", help="run directory (created when the run has started)")
    p.add_argument("--env", help="task family: point_nav, widowx_insertion (required for a new run "
                                 "without --config)")
    p.add_argument("--preset", help="smoke (CI, seconds), small (CPU benchmark, the default), paper")
    p.add_argument("--stage", choices=("dense", "sparse"), default=None,
                   help="dense: posterior sees the dense reward; sparse: only the sparse reward "
                        "(stage 2 of the sparse recipe; default dense, sparse with --offline-run)")
    p.add_argument("--offline-run", metavar="DIR",
                   help="stage-1 run directory whose episodes are offline data")
    p.add_argument("--init-from", metavar="DIR", type=lambda d: str(Path(d).resolve()),
                   help="start from this run's networks (its best checkpoint, else the newest; init_from), "
                        "e.g. stage 2 from stage 1")
    p.add_argument("--config", metavar="FILE",
                   help="a whole run config YAML instead of --env/--preset (e.g. a run's config.yaml; the "
                        "file the ROS launch's run_config takes)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                   help="where the networks run (device.device)")
    p.add_argument("--iterations", type=_int_at_least(0), help="training iterations (train.num_iterations)")
    p.add_argument("--seed", type=int, help="seed (train.seed; new runs only)")
    p.add_argument("--threads", type=_int_at_least(1), help="torch CPU threads (device.num_threads)")
    p.add_argument("--mode", choices=("alternate", "async"), default=None,
                   help="train.mode: alternate (collect, then train; the default) or async (an actor and a "
                        "learner process side by side; may change on --resume)")
    p.add_argument("--status-interval", type=_positive_float, default=30.0, metavar="S",
                   help="seconds between status lines when stderr is not a terminal (default 30)")
    p.set_defaults(func=_cmd_train, takes_settings=True, subparser=p)

    p = sub.add_parser("eval", help="meta-test a run on its held-out tasks and print the success table",
                       description="Run trials from a fresh belief on every held-out task and report success "
                                   "per episode (1, 2, ...); writes summary.json, success.md, videos, "
                                   "reward-prediction plots and (point_nav) overview.png into "
                                   "RUN_DIR/eval/<checkpoint>_<env steps>/ (or --out) and names that "
                                   "folder in eval/latest.json.")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="run directory made by `meld train`")
    p.add_argument("--episodes-per-trial", type=_int_at_least(1), default=None, help="default: the run's")
    p.add_argument("--rounds", type=_int_at_least(1), default=3, help="trials per held-out task")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="checkpoint file, 'best' (best on train-task validation) or 'latest' (default)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None)
    p.add_argument("--videos", type=_int_at_least(0), default=2,
                   help="trials recorded as MP4 + reward-prediction plot")
    p.add_argument("--stochastic", action="store_true",
                   help="sample actions (as the reference) instead of using the policy mean")
    p.add_argument("--out", metavar="DIR",
                   help="write the evaluation folder here instead of RUN_DIR/eval (e.g. for a run directory "
                        "under version control)")
    p.set_defaults(func=_cmd_eval, subparser=p)

    p = sub.add_parser("export", help="write a run's episodes as MCAP (ROS 2) or a LeRobot dataset, or its "
                                      "policy as a minimal run directory",
                       description="Export the episodes of a run directory. --format mcap: MCAP files of "
                                   "ROS 2 messages on the robot graph's topics (Foxglove, ros2 bag). "
                                   "--format lerobot: a LeRobot dataset (v3.0: parquet, H.264 MP4, meta). "
                                   "--format policy: the networks of one checkpoint with the run's config "
                                   "and tasks, which meld eval meta-tests (no episodes, no optimisers).")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="run directory (meld train, agent node)")
    p.add_argument("--format", required=True, choices=("mcap", "lerobot", "policy"),
                   help="mcap, lerobot or policy")
    p.add_argument("--checkpoint", metavar="NAME",
                   help="policy: 'best' (default: best on train-task validation), 'latest' or a file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (lerobot: new or empty)")
    p.add_argument("--episodes", metavar="IDS", help="ids and ranges, e.g. 0-99,120,200- (default: all)")
    p.add_argument("--per", default="trial", help="mcap: one file per trial (default), episode, or run")
    p.add_argument("--images", default="raw",
                   help="mcap: raw (sensor_msgs/Image, exact; default), png or jpeg (CompressedImage)")
    p.add_argument("--crf", type=int, default=18, help="lerobot: H.264 quality, 0 (best) to 51; default 18")
    p.add_argument("--preview", metavar="PNG", help="mcap: also draw the first file, Foxglove-like")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("rig", help="reset rig over USB serial: status, home, move, stop")
    rig_sub = p.add_subparsers(dest="rig_command", metavar="ACTION")
    rig_sub.required = True
    for name, text in (("status", "print state and position"), ("home", "find the switches, go to 0/0"),
                       ("move", "move to an absolute pose"), ("stop", "halt at once (drivers hold)")):
        r = rig_sub.add_parser(name, help=text)
        r.add_argument("--port", default="/dev/ttyACM0", help="serial device (default /dev/ttyACM0)")
        r.add_argument("--timeout", type=float, default=None, help="seconds to wait for the motion")
        if name == "move":
            r.add_argument("--rotation-deg", type=float, required=True, help="router rotation, degrees")
            r.add_argument("--translation-mm", type=float, required=True, help="rail position, mm")
            r.add_argument("--home", action="store_true",
                           help="home first (an Uno resets, and forgets its home, when the port opens)")
        r.set_defaults(func=_cmd_rig)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "takes_settings", False):
        args.settings = extra
    elif extra:
        getattr(args, "subparser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # PyOpenGL (pulled in by MuJoCo) logs an INFO line about an optional accelerator on every start.
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:
        with logging_redirect_tqdm():  # log lines are printed above a progress bar, never through it
            return int(args.func(args) or 0)
    except CliError as exc:
        print(f"meld: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("meld: interrupted", file=sys.stderr)
        return EXIT_ABORTED


if __name__ == "__main__":
    sys.exit(main())
