"""The `meld` entry point: help, version, info and one-line errors."""

import subprocess
import sys

from meld_core import cli


def test_help_lists_subcommands(capsys):
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "info" in out


def test_info_runs(capsys):
    assert cli.main(["info"]) == 0
    assert "numpy" in capsys.readouterr().out


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "meld_core.cli", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "meld" in result.stdout
