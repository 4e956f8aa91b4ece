"""The `meld` command: everything a user runs without ROS.

    meld --help
    meld info
    meld train --env point_nav --preset smoke --run-dir runs/point_smoke
    meld eval --run-dir runs/point_smoke --episodes-per-trial 2 --rounds 3
    meld export --run-dir runs/point_smoke --format mcap --out exports/point_smoke

Each subcommand is a `_cmd_<name>(args)` function registered in `build_parser()`. Heavy imports
(torch, mujoco) happen inside the subcommand, so `meld --help` stays instant. Errors a user can fix
are raised as `CliError` and printed as one line with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from meld_core import __version__


class CliError(Exception):
    """A user-facing error: printed as `meld: error: <message>` with exit code 2."""


def _cmd_info(args: argparse.Namespace) -> int:
    """Print versions of meld and of the libraries it found."""
    import importlib

    print(f"meld {__version__} (python {platform.python_version()}, {platform.machine()})")
    for name in ("numpy", "torch", "cv2", "mujoco", "serial", "yaml"):
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


def _cmd_train(args: argparse.Namespace) -> int:
    """Meta-train (or resume) a run; Ctrl-C stops cleanly after the running episode with a checkpoint."""
    from meld_core.bridge.shutdown import StopSignals
    from meld_core.config.presets import UnknownPresetError
    from meld_core.envs.registry import UnknownEnvError
    from meld_core.files import explain_os_error
    from meld_core.train.rundir import CheckpointError, RunDir, RunDirError
    from meld_core.train.setup import resolve_run_config
    from meld_core.train.trainer import run_training

    rd = RunDir(args.run_dir)
    try:
        config = resolve_run_config(
            rd.root, resume=args.resume and args.env is None, env=args.env, preset=args.preset,
            stage=args.stage or ("sparse" if args.offline_run else "dense"), offline_run=args.offline_run,
            iterations=args.iterations, seed=args.seed)
        if args.threads is not None:
            config = dataclasses.replace(
                config, device=dataclasses.replace(config.device, num_threads=args.threads))
    except (UnknownEnvError, UnknownPresetError, RunDirError, ValueError) as exc:
        raise CliError(str(exc)) from None

    holder: list = []

    def stop() -> None:  # first Ctrl-C/SIGTERM: stop cleanly; a second one aborts (StopSignals)
        if not holder:
            raise KeyboardInterrupt
        print("meld: stopping after the running episode (Ctrl-C again to abort)", file=sys.stderr)
        holder[0].request_stop()

    try:
        with StopSignals(stop, same_within_s=0.0):
            trainer = run_training(config, rd.root, resume=args.resume, device=args.device,
                                   trainer_callback=holder.append)
    except (RunDirError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # the run directory's disk is full, read-only, ...
        raise CliError(explain_os_error(exc)) from None
    c = trainer.counters
    print(f"run {rd.root}: {c.phase}, {c.iteration} iterations, {c.episodes} episodes, {c.env_steps} env "
          f"steps, {c.model_steps} model steps, {c.ac_steps} AC steps")
    if trainer.last_eval is not None:
        print(trainer.last_eval.table())
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    """Meta-test a run's checkpoint on its held-out tasks and print the success table."""
    from meld_core.files import explain_os_error
    from meld_core.train.evaluation import evaluate_run
    from meld_core.train.rundir import CheckpointError, RunDirError

    try:
        result, summary = evaluate_run(args.run_dir, episodes_per_trial=args.episodes_per_trial,
                                       rounds=args.rounds, checkpoint=args.checkpoint, device=args.device,
                                       video_trials=args.videos,
                                       deterministic=False if args.stochastic else None)
    except (RunDirError, CheckpointError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(explain_os_error(exc)) from None
    print(result.table())
    eval_dir = Path(summary["out_dir"])
    print(f"(posterior input: {result.reward_input} reward; {len(result.trials)} trials; "
          f"written to {eval_dir / 'summary.json'})")
    if "overview" in summary:
        print(f"paths of every episode: {eval_dir / summary['overview']}")
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
                       description="Meta-train MELD (warm-up, model pre-training, collect/train "
                                   "iterations, periodic evaluation on held-out tasks, checkpoints) into a "
                                   "run directory.")
    p.add_argument("--env", help="task family: point_nav, widowx_insertion (required unless resuming)")
    p.add_argument("--preset", default="small", help="smoke (CI, seconds), small (CPU benchmark), paper")
    p.add_argument("--stage", choices=("dense", "sparse"), default=None,
                   help="dense: posterior sees the dense reward; sparse: only the sparse reward "
                        "(stage 2 of the sparse recipe; default dense, sparse with --offline-run)")
    p.add_argument("--offline-run", metavar="DIR",
                   help="stage-1 run directory whose episodes are offline data")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="run directory (created if missing)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                   help="override the preset's device")
    p.add_argument("--iterations", type=int, help="override the number of training iterations")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="meta-test a run on its held-out tasks and print the success table",
                       description="Run trials from a fresh belief on every held-out task and report success "
                                   "per episode position; writes DIR/eval/summary.json, success.md, videos, "
                                   "reward-prediction plots and (point_nav) overview.png.")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="run directory made by `meld train`")
    p.add_argument("--episodes-per-trial", type=int, default=None, help="default: the run's E")
    p.add_argument("--rounds", type=int, default=3, help="trials per held-out task")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="checkpoint file, 'best' (best on train-task validation) or 'latest' (default)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None)
    p.add_argument("--videos", type=int, default=2, help="trials recorded as MP4 + reward-prediction plot")
    p.add_argument("--stochastic", action="store_true",
                   help="sample actions (as the reference) instead of using the policy mean")
    p.set_defaults(func=_cmd_eval)

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
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # PyOpenGL (pulled in by MuJoCo) logs an INFO line about an optional accelerator on every start.
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"meld: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("meld: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
