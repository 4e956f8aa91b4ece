"""The `meld` command: everything a user runs without ROS.

    meld --help
    meld info

Each subcommand is a `_cmd_<name>(args)` function registered in `build_parser()`. Heavy imports
(torch, mujoco) happen inside the subcommand, so `meld --help` stays instant. Errors a user can fix
are raised as `CliError` and printed as one line with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
from collections.abc import Sequence

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
