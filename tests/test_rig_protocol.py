"""Reset-rig protocol: exact bytes of every message, parsing, unit rounding, and the firmware header
agreeing with the Python table (no firmware build needed)."""

import re
from pathlib import Path

import pytest

from meld_core.hardware import rig_protocol as p

HEADER = Path(__file__).resolve().parents[1] / "hardware/reset_rig/firmware/rig_protocol.h"


def test_crc8_check_value():
    # The published check value of CRC-8 (poly 0x07, init 0) for "123456789".
    assert p.crc8(b"123456789") == 0xF4
    assert p.crc8(b"") == 0


@pytest.mark.parametrize("args, wire", [
    ((1, "HELLO", 1), b"HELLO 1 1*9A\n"),
    ((2, "STATUS"), b"STATUS 2*0C\n"),
    ((3, "CONFIG", 26667, 80000, -8500, 8500, -10500, 10500, -9500, -11500, 1000),
     b"CONFIG 3 26667 80000 -8500 8500 -10500 10500 -9500 -11500 1000*9F\n"),
    ((4, "HOME"), b"HOME 4*C0\n"),
    ((5, "MOVE", 3000, -5000), b"MOVE 5 3000 -5000*9E\n"),
    ((65535, "STOP"), b"STOP 65535*16\n"),
])
def test_every_command_exact_bytes(args, wire):
    assert p.encode_command(*args) == wire


def test_every_command_is_covered_above():
    assert set(p.COMMANDS) == {"HELLO", "STATUS", "CONFIG", "HOME", "MOVE", "STOP"}


@pytest.mark.parametrize("msg, wire", [
    (p.Reply(1, 0, ("1", "1.0.0")), b"OK 1 1 1.0.0*46\n"),
    (p.Reply(1, 0, ("2", "2.0.0")), b"OK 1 2 2.0.0*86\n"),
    (p.Reply(3, 0, ("0",)), b"OK 3 0*3D\n"),  # CONFIG: home kept
    (p.Reply(3, 0, ("1",)), b"OK 3 1*3A\n"),  # CONFIG: home cleared
    (p.Reply(2, 0, ("IDLE", "1", "3000", "-5000", "80", "-400", "5", "0", "0")),
     b"OK 2 IDLE 1 3000 -5000 80 -400 5 0 0*03\n"),
    (p.Reply(5, 0, ("80", "-400")), b"OK 5 80 -400*4E\n"),
    (p.Reply(0, 1), b"ERR 0 1*7D\n"),
])
def test_replies_exact_bytes_both_ways(msg, wire):
    assert p.encode_reply(msg) == wire
    assert p.parse_line(wire) == msg


@pytest.mark.parametrize("name, fields, wire", [
    ("BOOT", (1, "1.0.0"), b"EVT BOOT 1 1.0.0*65\n"),
    ("DONE", (5, 3000, -5000), b"EVT DONE 5 3000 -5000*2D\n"),
    ("ABORT", (5, 14, 1200, -2000), b"EVT ABORT 5 14 1200 -2000*94\n"),
    ("ESTOP", (1,), b"EVT ESTOP 1*5A\n"),
])
def test_events_exact_bytes_both_ways(name, fields, wire):
    assert p.encode_event(name, *fields) == wire
    assert p.parse_line(wire) == p.Event(name, tuple(str(f) for f in fields))
    assert set(p.EVENTS) == {"BOOT", "DONE", "ABORT", "ESTOP"}


@pytest.mark.parametrize("wire", [
    b"OK 1 1 1.0.0*47\n",  # wrong checksum
    b"OK 1 1 1.0.0\n",  # none
    b"OK 1 1 1.0.0*4G\n",  # not hex
    b"EVT DONE 5 3000*00\n",
    b"\xff\xfe*00",
    b"",
])
def test_damaged_lines_raise_frame_error(wire):
    with pytest.raises(p.FrameError):
        p.parse_line(wire)


def test_encode_rejects_bad_commands():
    with pytest.raises(ValueError, match="unknown"):
        p.encode_command(1, "JUMP")
    with pytest.raises(ValueError, match="takes 2"):
        p.encode_command(1, "MOVE", 1)
    with pytest.raises(ValueError, match="seq"):
        p.encode_command(0, "STATUS")


def test_unit_rounding_matches_firmware_rule():
    # Half away from zero, as in firmware.ino (C integer division truncates toward zero).
    assert p.steps_from_milli(3000, 26667) == 80  # 80.001
    assert p.steps_from_milli(-3000, 26667) == -80
    assert p.steps_from_milli(-5000, 80000) == -400
    assert p.steps_from_milli(18750, 80000) == 1500
    assert p.steps_from_milli(6, 250000) == 2  # 1.5 -> 2
    assert p.steps_from_milli(-6, 250000) == -2
    assert p.milli_from_steps(80, 26667) == 3000  # 2999.96
    assert p.milli_from_steps(-253, 26667) == -9487


def _header_defines():
    text = HEADER.read_text()
    return dict(re.findall(r"^#define\s+(RIG_\w+)\s+(\"[^\"]*\"|-?\d+)", text, re.M))


def test_firmware_header_matches_python_table():
    d = _header_defines()
    assert int(d["RIG_PROTOCOL_VERSION"]) == p.PROTOCOL_VERSION
    assert int(d["RIG_BAUD"]) == p.BAUD
    assert int(d["RIG_MAX_LINE"]) == p.MAX_LINE
    header_commands = {k[len("RIG_CMD_"):]: v.strip('"') for k, v in d.items()
                       if k.startswith("RIG_CMD_") and not k.endswith(("_NARGS", "_NREPLY"))}
    assert header_commands == {name: name for name in p.COMMANDS}
    for name, spec in p.COMMANDS.items():
        assert int(d[f"RIG_CMD_{name}_NARGS"]) == len(spec.args), name
        assert int(d[f"RIG_CMD_{name}_NREPLY"]) == len(spec.reply), name
    header_events = {k[len("RIG_EVT_"):]: v.strip('"') for k, v in d.items()
                     if k.startswith("RIG_EVT_") and not k.endswith("_NFIELDS")}
    assert header_events == {name: name for name in p.EVENTS}
    for name, spec in p.EVENTS.items():
        assert int(d[f"RIG_EVT_{name}_NFIELDS"]) == len(spec.fields), name
    header_states = {v.strip('"') for k, v in d.items() if k.startswith("RIG_STATE_")}
    assert header_states == set(p.STATES)
    header_errors = {k[len("RIG_ERR_"):]: int(v) for k, v in d.items() if k.startswith("RIG_ERR_")}
    assert header_errors == {e.name: e.code for e in p.ERRORS.values()}


def test_protocol_md_example_and_version_match_the_table():
    doc = (HEADER.parents[1] / "PROTOCOL.md").read_text()
    assert f"# Reset-rig serial protocol (version {p.PROTOCOL_VERSION})" in doc
    example = doc.split("## Example session", 1)[1].split("```")[1]
    frames = re.findall(r"((?:[A-Z]+ )[-\w. ]*?)\*([0-9A-F]{2})", example)
    assert len(frames) >= 12
    for body, checksum in frames:
        assert p.frame(body) == f"{body}*{checksum}\n".encode(), body
    assert f"HELLO 1 {p.PROTOCOL_VERSION}*" in example
