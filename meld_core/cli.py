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
