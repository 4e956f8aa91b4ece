"""The reset-rig serial protocol as data: messages, fields, error codes, framing.

The firmware mirrors this table in ``hardware/reset_rig/firmware/rig_protocol.h``; a test parses
that header and fails when the two disagree. ``hardware/reset_rig/PROTOCOL.md`` documents both.

Every line, in both directions, is ``<body>*<CRC-8 as two upper-case hex digits>\\n``
(CRC-8: polynomial 0x07, initial value 0, over the bytes of ``<body>``)::

    host -> rig   <COMMAND> <seq> [arg ...]      seq 1..65535; a repeated seq is answered, not re-run
                                                 (except HELLO and STOP, which always run)
    rig -> host   OK <seq> [field ...]           exactly one reply per command
                  ERR <seq> <code>               seq 0 when the command line could not be trusted
                  EVT <EVENT> [field ...]        unsolicited report (boot, motion end, e-stop)

Positions travel as integers: milli-degrees for the rotation, micrometres for the translation.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL_VERSION = 2
BAUD = 115200
MAX_LINE = 96  # bytes before b"\n", checksum included
MAX_SEQ = 65535


@dataclass(frozen=True)
class CommandSpec:
    """One host command: its argument names and the names of the fields after ``OK <seq>``."""

    name: str
    args: tuple[str, ...]
    reply: tuple[str, ...]
    motion: bool  # ends later with EVT DONE or EVT ABORT carrying the command's seq
    doc: str


@dataclass(frozen=True)
class EventSpec:
    """One unsolicited report: the names of its fields after ``EVT <name>``."""

    name: str
    fields: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class ErrorSpec:
    """One error code: its name, what it means and what the host should do next."""

    code: int
    name: str
    meaning: str
    action: str


COMMANDS: dict[str, CommandSpec] = {
    c.name: c
    for c in (
        CommandSpec("HELLO", ("protocol",), ("protocol", "firmware"), False,
                    "handshake: the host's protocol version; the rig answers with its own and its firmware"),
        CommandSpec("STATUS", (),
                    ("state", "homed", "rotation_mdeg", "translation_um", "rotation_steps",
                     "translation_steps", "motion_seq", "motion_code", "estop"), False,
                    "state and position; motion_seq/motion_code tell how the last motion ended"),
        CommandSpec("CONFIG",
                    ("rotation_msteps_per_deg", "translation_msteps_per_mm", "rotation_min_mdeg",
                     "rotation_max_mdeg", "translation_min_um", "translation_max_um",
                     "rotation_home_mdeg", "translation_home_um", "watchdog_ms"), ("home_cleared",), False,
                    "calibration, soft limits (around 0), switch positions and watchdog period (only when "
                    "idle); home_cleared is 1 when it cleared homed (new calibration or switch position, or "
                    "the rig stands outside the new limits)"),
        CommandSpec("HOME", (), (), True,
                    "find both limit switches, then move to 0 deg / 0 mm"),
        CommandSpec("MOVE", ("rotation_mdeg", "translation_um"), ("rotation_steps", "translation_steps"),
                    True, "move both axes to an absolute pose inside the soft limits (homed rig only)"),
        CommandSpec("STOP", (), (), False,
                    "halt at once, even with a repeated seq; drivers stay enabled and hold the position"),
    )
}

EVENTS: dict[str, EventSpec] = {
    e.name: e
    for e in (
        EventSpec("BOOT", ("protocol", "firmware"), "the firmware (re)started: not homed, drivers off"),
        EventSpec("DONE", ("seq", "rotation_mdeg", "translation_um"), "a HOME or MOVE reached its target"),
        EventSpec("ABORT", ("seq", "code", "rotation_mdeg", "translation_um"),
                  "a HOME or MOVE ended early; code says why"),
        EventSpec("ESTOP", ("active",), "the emergency-stop input changed (1 pressed, 0 released)"),
    )
}

STATES = ("IDLE", "HOMING", "MOVING", "ESTOP")

ERRORS: dict[int, ErrorSpec] = {
    e.code: e
    for e in (
        ErrorSpec(0, "NONE", "no error", "nothing to do"),
        ErrorSpec(1, "BAD_CHECKSUM", "the line's checksum was missing or wrong",
                  "resend the line (noise on the cable if it keeps happening)"),
        ErrorSpec(2, "LINE_TOO_LONG", f"more than {MAX_LINE} bytes without a newline; dropped",
                  "send shorter lines; check that host and rig run the same protocol version"),
        ErrorSpec(3, "BAD_SYNTAX", "not '<COMMAND> <seq> [int ...]' in printable ASCII",
                  "fix the sender; check the baud rate (115200)"),
        ErrorSpec(4, "UNKNOWN_COMMAND", "the command name is not in the protocol",
                  "update the host or the firmware so their protocol versions match"),
        ErrorSpec(5, "BAD_ARGUMENT",
                  "wrong number of arguments, not integers, or a CONFIG value out of bounds or "
                  "inconsistent (a soft range without 0, a switch position not below its soft range)",
                  "check the command's arguments against PROTOCOL.md"),
        ErrorSpec(6, "VERSION_MISMATCH", "the host speaks another protocol version",
                  "flash the firmware from this checkout: make -C hardware/reset_rig flash"),
        ErrorSpec(7, "NOT_HOMED",
                  "a move was asked before homing (or after the home was lost: e-stop, limit switch, "
                  "a CONFIG that cleared it)",
                  "home the rig first (meld rig home)"),
        ErrorSpec(8, "OUT_OF_RANGE", "the target lies outside the soft limits",
                  "ask for a pose inside the configured limits"),
        ErrorSpec(9, "BUSY", "a motion is running", "wait for it to end or send STOP"),
        ErrorSpec(10, "LIMIT_HIT", "a limit switch closed outside homing; the home position is lost",
                  "check the rig for an obstruction or a loose switch, then home again"),
        ErrorSpec(11, "WATCHDOG", "the host was silent longer than the watchdog period during a motion",
                  "keep the host talking during motions (the client polls STATUS); home again if unsure"),
        ErrorSpec(12, "HOME_FAILED", "a limit switch was not reached or did not release within the travel",
                  "check the switch wiring (normally closed to GND) and that the axis moves freely"),
        ErrorSpec(13, "ESTOP", "the emergency stop is pressed (or its wire is broken); drivers are off",
                  "release the emergency stop, then home again"),
        ErrorSpec(14, "STOPPED", "the motion was halted by STOP", "send a new command when ready"),
    )
}
ERROR_CODES: dict[str, int] = {e.name: e.code for e in ERRORS.values()}


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial value 0, no reflection (check value for b"123456789": 0xF4)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def frame(body: str) -> bytes:
    """``body`` plus its checksum and newline, as sent on the wire."""
    raw = body.encode("ascii")
    return raw + b"*%02X\n" % crc8(raw)


def encode_command(seq: int, name: str, *args: int) -> bytes:
    """The wire bytes of one command. Checks the name, the argument count and the seq range."""
    spec = COMMANDS.get(name)
    if spec is None:
        raise ValueError(f"unknown reset-rig command {name!r}; known: {', '.join(COMMANDS)}")
    if len(args) != len(spec.args):
        raise ValueError(f"{name} takes {len(spec.args)} arguments ({', '.join(spec.args)}), got {len(args)}")
    if not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"seq must be in 1..{MAX_SEQ}, got {seq}")
    line = frame(" ".join([name, str(seq), *(str(int(a)) for a in args)]))
    if len(line) - 1 > MAX_LINE:
        raise ValueError(f"{name} line is {len(line) - 1} bytes, more than {MAX_LINE}")
    return line


class FrameError(ValueError):
    """A received line that is not a valid frame (bad checksum, bad shape)."""


@dataclass(frozen=True)
class Reply:
    """``OK <seq> fields`` (code 0) or ``ERR <seq> <code>``."""

    seq: int
    code: int
    fields: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class Event:
    """``EVT <name> fields``."""

    name: str
    fields: tuple[str, ...]


def parse_line(line: bytes) -> Reply | Event:
    """Parse one line from the rig (with or without the trailing newline). Raises FrameError."""
    line = line.rstrip(b"\r\n")
    if len(line) < 4 or line[-3:-2] != b"*":
        raise FrameError(f"no checksum in {line[:120]!r}")
    body, checksum = line[:-3], line[-2:]
    try:
        expected = int(checksum, 16)
    except ValueError:
        raise FrameError(f"checksum is not hex in {line[:120]!r}") from None
    if crc8(body) != expected:
        raise FrameError(f"checksum mismatch in {line[:120]!r}")
    try:
        tokens = body.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise FrameError(f"non-ASCII line {line[:120]!r}") from None
    kind = tokens[0]
    try:
        if kind == "OK" and len(tokens) >= 2:
            return Reply(seq=int(tokens[1]), code=0, fields=tuple(tokens[2:]))
        if kind == "ERR" and len(tokens) == 3:
            return Reply(seq=int(tokens[1]), code=int(tokens[2]))
    except ValueError:
        raise FrameError(f"bad number in {line[:120]!r}") from None
    if kind == "EVT" and len(tokens) >= 2 and tokens[1] in EVENTS:
        spec = EVENTS[tokens[1]]
        if len(tokens) - 2 != len(spec.fields):
            raise FrameError(f"EVT {spec.name} needs {len(spec.fields)} fields in {line[:120]!r}")
        return Event(name=tokens[1], fields=tuple(tokens[2:]))
    raise FrameError(f"not an OK/ERR/EVT line: {line[:120]!r}")


def encode_reply(reply: Reply) -> bytes:
    """The rig's side of a reply (used by fakes and tests)."""
    if reply.ok:
        return frame(" ".join(["OK", str(reply.seq), *reply.fields]))
    return frame(f"ERR {reply.seq} {reply.code}")


def encode_event(name: str, *fields: object) -> bytes:
    """The rig's side of an event (used by fakes and tests)."""
    spec = EVENTS[name]
    if len(fields) != len(spec.fields):
        raise ValueError(f"EVT {name} takes {len(spec.fields)} fields ({', '.join(spec.fields)})")
    return frame(" ".join(["EVT", name, *(str(f) for f in fields)]))


def steps_from_milli(milli: int, msteps_per_unit: int) -> int:
    """Step position for a milli-unit position, rounded half away from zero (as the firmware does)."""
    num = milli * msteps_per_unit
    q = (abs(num) + 500_000) // 1_000_000
    return q if num >= 0 else -q


def milli_from_steps(steps: int, msteps_per_unit: int) -> int:
    """Milli-unit position of a step position, rounded half away from zero (as the firmware does)."""
    num = steps * 1_000_000
    q = (abs(num) + msteps_per_unit // 2) // msteps_per_unit
    return q if num >= 0 else -q
