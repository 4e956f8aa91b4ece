"""The real reset-rig firmware, built with Debian's AVR toolchain and run in simavr, driven through
the real Python client over a pseudo-terminal (marker `firmware`).

The harness (hardware/reset_rig/sim/rig_sim.c) integrates step pulses into simulated axes, opens
the limit switches when an axis reaches them, and answers COUNT on its stdin/stdout. The tests use
a coarse calibration (5 steps/deg, 20 steps/mm) so that motions are short in simulated time (simavr
runs the 16 MHz AVR at roughly 0.2-0.6x real time on a loaded machine). The harness's switches sit
one step below the firmware's home positions, so after homing the simulated positions equal the
firmware's step counters and every move can be checked step by step against the calibration.

Every test starts its own rig_sim process, so it sees the firmware as after power-up (not homed,
axes where the harness put them) whatever ran before it; a test that needs a homed rig asks for the
`homed` fixture, which runs HOME through the client first.
"""

from __future__ import annotations

import logging
import queue
import random
import shutil
import subprocess
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest

from meld_core.hardware import rig_protocol as proto
from meld_core.hardware.reset_rig import (
    ResetRig,
    ResetRigConfig,
    RigAbortedError,
    RigEStopError,
    RigLimitError,
    RigNotHomedError,
    RigProtocolError,
)

pytestmark = pytest.mark.firmware

RIG_DIR = Path(__file__).resolve().parents[1] / "hardware/reset_rig"
_missing = [t for t in ("avr-gcc", "avr-gcc-ar", "avr-objcopy", "gcc", "make") if shutil.which(t) is None]
_missing += [h for h in ("/usr/include/simavr/sim_avr.h",
                         "/usr/share/arduino/hardware/arduino/avr/cores/arduino") if not Path(h).exists()]
if _missing:
    pytest.skip(f"AVR toolchain or simavr missing ({', '.join(_missing)}); install with ./install.sh --test",
                allow_module_level=True)

STEPS_PER_DEG, STEPS_PER_MM = 5.0, 20.0
ROT_HOME = proto.steps_from_milli(-9500, 5000)  # -48 steps: where the firmware puts the switch
TRANS_HOME = proto.steps_from_milli(-11500, 20000)  # -230
ROT_SWITCH, TRANS_SWITCH = ROT_HOME - 1, TRANS_HOME - 1  # pressed at or below; released one step up
ROT_START, TRANS_START = 10, 30  # where the simulated axes are at power-up (unknown to the firmware)
CONFIG = dict(steps_per_deg=STEPS_PER_DEG, steps_per_mm=STEPS_PER_MM, reply_timeout_s=2.0,
              connect_timeout_s=20.0, home_timeout_s=120.0, move_timeout_s=90.0)
Counts = namedtuple("Counts", "rot_pos rot_pulses trans_pos trans_pulses enabled disabled_pulses sim_ms")


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class RigSim:
    """One rig_sim process: the pty path and the control channel (COUNT, ESTOP, JAM, PLACE)."""

    def __init__(self, build: Path, *options: str):
        self.proc = subprocess.Popen(
            [str(build / "rig_sim"), "--rot-switch", str(ROT_SWITCH), "--trans-switch", str(TRANS_SWITCH),
             *options, str(build / "reset_rig.elf")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.pty = self._expect("PTY ", 20.0).split()[1]

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def _expect(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:  # simavr prints its own notes on stdout too: skip them
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"rig_sim sent no {prefix!r} line within {timeout_s} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line

    def control(self, line: str, prefix: str = "OK") -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._expect(prefix, 10.0)

    def count(self) -> Counts:
        return Counts(*(int(float(x)) for x in self.control("COUNT", "COUNT").split()[1:]))

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class FlakySerial:
    """Wraps the pty's serial port: damages the next `corrupt` writes (one byte flipped), sends the
    next `duplicate` writes twice, and keeps everything read in `log`."""

    def __init__(self, port: str, baudrate: int):
        import serial

        self._s = serial.Serial(port, baudrate, timeout=0.05, write_timeout=1.0)
        self.corrupt = self.corrupted = self.duplicate = 0
        self.log = b""

    def write(self, data: bytes) -> int:
        if self.corrupt > 0:
            self.corrupt -= 1
            self.corrupted += 1
            data = data[:2] + bytes([data[2] ^ 0x20]) + data[3:]
        if self.duplicate > 0:
            self.duplicate -= 1
            self._s.write(data)
        return self._s.write(data)

    def read(self, n: int = 1) -> bytes:
        data = self._s.read(n)
        self.log += data
        return data

    def __getattr__(self, name):
        return getattr(self._s, name)


@pytest.fixture(scope="module")
def build(tmp_path_factory, request) -> Path:
    out = tmp_path_factory.mktemp("rig_build")
    result = subprocess.run(["make", "-C", str(RIG_DIR), f"BUILD={out}", "all", "sim"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    size = [line for line in result.stdout.splitlines() if line.startswith(("Program:", "Data:"))]
    assert size and "bytes" in size[0]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:  # the size goes into the CI log
        with capture.global_and_fixture_disabled():
            reporter.write_line("\nreset-rig firmware: " + " | ".join(" ".join(x.split()) for x in size))
    return out


@pytest.fixture()
def sim(build):
    # At most half real time: a move that a test interrupts lasts >= 0.7 s of wall time even on a
    # fast machine, so a briefly descheduled test process still catches it in motion.
    s = RigSim(build, "--rot-start", str(ROT_START), "--trans-start", str(TRANS_START), "--speed", "0.5")
    yield s
    s.close()


@pytest.fixture()
def link(sim):
    ports = []

    def factory(port, baudrate):
        ports.append(FlakySerial(port, baudrate))
        return ports[-1]

    rig = ResetRig(ResetRigConfig(port=sim.pty, **CONFIG), serial_factory=factory)
    rig.connect()
    yield rig, ports
    rig.disconnect()


@pytest.fixture()
def rig(link):
    return link[0]


@pytest.fixture()
def homed(rig):
    """This test's rig after HOME: homed, at 0 deg / 0 mm."""
    state = rig.home(timeout_s=120)
    assert state.homed and (state.rotation_steps, state.translation_steps) == (0, 0)
    return rig


def test_build_from_clean_tree_prints_size(build):
    assert (build / "reset_rig.hex").stat().st_size > 1000
    assert (build / "rig_sim").exists()


def test_handshake_and_status_before_homing(rig, sim):
    assert rig.is_connected and rig.firmware_version == "2.0.0"
    state = rig.status()
    assert state.state == "IDLE" and not state.moving
    c = sim.count()
    assert c.enabled == 0 and c.rot_pulses == 0 and c.trans_pulses == 0  # drivers off, nothing moved


def test_move_before_homing_is_refused_without_steps(rig, sim):
    assert not rig.status().homed  # a fresh firmware
    with pytest.raises(RigNotHomedError, match="home the rig first"):
        rig.move_to(1.0, 1.0)
    c = sim.count()
    assert c.rot_pulses == 0 and c.trans_pulses == 0


def test_homing_finds_the_switches_and_centres(rig, sim):
    state = rig.home(timeout_s=120)
    assert state.homed and state.state == "IDLE" and state.error is None
    assert (state.rotation_steps, state.translation_steps) == (0, 0)
    assert state.rotation_deg == 0.0 and state.translation_mm == 0.0
    c = sim.count()
    assert (c.rot_pos, c.trans_pos) == (0, 0)  # the simulated axes agree with the firmware
    # Down until the switch pressed, one step back until it released, then on to the centre.
    assert c.rot_pulses == (ROT_START - ROT_SWITCH) + 1 + (-ROT_HOME)
    assert c.trans_pulses == (TRANS_START - TRANS_SWITCH) + 1 + (-TRANS_HOME)
    assert c.enabled == 1


@pytest.mark.parametrize("rotation_deg, translation_mm", [(3.0, -5.0), (-8.0, 10.0), (0.5, 0.25), (0.0, 0.0)])
@pytest.mark.usefixtures("homed")
def test_moves_step_exactly_by_the_calibration(rig, sim, rotation_deg, translation_mm):
    before = sim.count()
    state = rig.move_to(rotation_deg, translation_mm, timeout_s=90)
    after = sim.count()
    cfg = rig.config
    want_rot = proto.steps_from_milli(round(rotation_deg * 1000), round(cfg.steps_per_deg * 1000))
    want_trans = proto.steps_from_milli(round(translation_mm * 1000), round(cfg.steps_per_mm * 1000))
    assert (after.rot_pos, after.trans_pos) == (want_rot, want_trans)
    assert after.rot_pulses - before.rot_pulses == abs(want_rot - before.rot_pos)  # no extra pulses
    assert after.trans_pulses - before.trans_pulses == abs(want_trans - before.trans_pos)
    assert (state.rotation_steps, state.translation_steps) == (want_rot, want_trans)
    assert state.rotation_deg == pytest.approx(rotation_deg, abs=0.5 / STEPS_PER_DEG + 1e-3)
    assert state.translation_mm == pytest.approx(translation_mm, abs=0.5 / STEPS_PER_MM + 1e-3)
    assert state.state == "IDLE" and state.error is None


@pytest.mark.usefixtures("homed")
def test_stop_during_a_move_halts_and_holds(rig, sim):
    rig.move_to(-8.0, -10.0, timeout_s=90)
    start = sim.count()
    errors: list[BaseException] = []
    mover = threading.Thread(target=lambda: _capture(errors, rig.move_to, 8.0, 10.0, timeout_s=90))
    mover.start()
    wait_for(lambda: sim.count().trans_pulses > start.trans_pulses + 5, 60, "the move to start")
    state = rig.stop()
    mover.join(timeout=30)
    assert not mover.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], RigAbortedError) and "STOPPED" in str(errors[0])
    assert state.state == "IDLE" and state.homed and state.error == "STOPPED"
    halted = sim.count()
    assert halted.trans_pos < 200  # short of +10 mm (200 steps)
    assert (halted.rot_pos, halted.trans_pos) == (state.rotation_steps, state.translation_steps)
    time.sleep(0.3)
    later = sim.count()
    assert (later.rot_pulses, later.trans_pulses) == (halted.rot_pulses, halted.trans_pulses)
    assert later.enabled == 1  # drivers hold the position
    rig.move_to(0.0, 0.0, timeout_s=90)  # still homed: moves again


@pytest.mark.usefixtures("homed")
def test_stop_with_the_running_moves_seq_still_stops(rig, sim, link):
    # A STOP is never answered from the repeat cache: it halts even when it reuses the seq of the
    # MOVE it interrupts, and gets exactly one reply of its own. The client never reuses a seq, so
    # the STOP line goes out raw.
    port = link[1][-1]
    rig.move_to(-8.0, -10.0, timeout_s=90)
    start = sim.count()
    move = rig.request("MOVE", 8000, 10000)
    wait_for(lambda: sim.count().trans_pulses > start.trans_pulses + 5, 60, "the move to start")
    port.log = b""
    rig._write(proto.encode_command(move.seq, "STOP"))
    with pytest.raises(RigAbortedError, match="STOPPED"):
        rig._wait_motion(move.seq, "MOVE", 30.0)
    halted = sim.count()
    time.sleep(0.3)
    later = sim.count()
    assert (later.rot_pulses, later.trans_pulses) == (halted.rot_pulses, halted.trans_pulses)
    assert halted.trans_pos < 200  # short of +10 mm (200 steps)
    state = rig.status()  # its reply follows the STOP's on the wire
    assert state.state == "IDLE" and state.homed and state.error == "STOPPED"
    assert (state.rotation_steps, state.translation_steps) == (halted.rot_pos, halted.trans_pos)
    replies = [m for m in map(proto.parse_line, filter(None, port.log.split(b"\n")))
               if isinstance(m, proto.Reply) and m.seq == move.seq]
    assert replies == [proto.Reply(move.seq, 0)]  # "OK <seq>", not the MOVE's cached reply


def _capture(errors, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        errors.append(exc)


def _assert_still_answers_without_moving(rig, sim, before):
    state = rig.status()
    after = sim.count()
    assert state.state == "IDLE"
    assert (after.rot_pulses, after.trans_pulses) == (before.rot_pulses, before.trans_pulses)


def test_random_bytes_never_wedge_and_never_move(rig, sim, link):
    port = link[1][-1]
    before = sim.count()
    noise = random.Random(6)
    port.log = b""
    for _ in range(4):
        rig._write(bytes(noise.randrange(256) for _ in range(1000)) + b"\n")
        _assert_still_answers_without_moving(rig, sim, before)
    assert b"ERR 0 1*7D\n" in port.log  # the rig answered the noise lines with BAD_CHECKSUM


def test_bad_checksum_is_retried_by_the_client(rig, sim, link):
    port = link[1][-1]
    before = sim.count()
    rig._write(b"MOVE 77 1000 1000*00\n")  # a valid command with a wrong checksum: ignored
    _assert_still_answers_without_moving(rig, sim, before)
    port.corrupt, port.corrupted = 1, 0
    assert rig.status().state == "IDLE"  # the rig said BAD_CHECKSUM, the client resent
    assert port.corrupted == 1
    port.corrupt = 100
    with pytest.raises(RigProtocolError, match="damaged"):
        rig.status()
    port.corrupt = 0
    _assert_still_answers_without_moving(rig, sim, before)


def test_unknown_command_and_bad_arguments_are_clear_errors(rig, sim, monkeypatch):
    before = sim.count()
    monkeypatch.setitem(proto.COMMANDS, "JUMP", proto.CommandSpec("JUMP", (), (), True, "not in firmware"))
    with pytest.raises(RigProtocolError, match="UNKNOWN_COMMAND"):
        rig.request("JUMP")
    bad = list(rig.config.config_args())
    bad[0] = 0  # zero steps per degree
    with pytest.raises(RigProtocolError, match="BAD_ARGUMENT"):
        rig.request("CONFIG", *bad)
    _assert_still_answers_without_moving(rig, sim, before)


def test_config_refuses_soft_limits_without_the_home_target(rig, sim):
    # HOME ends at 0 deg / 0 mm; a soft range without 0 would have it drive outside the limits.
    # The client's ResetRigConfig cannot hold such a range, so the CONFIG lines go out raw.
    good = rig.config.config_args()  # rotation -8500..8500 mdeg, translation -10500..10500 um
    before = sim.count()
    for index, value in ((2, 1000), (3, -1000), (4, 3000), (5, -3000)):  # one bound past 0 each
        bad = list(good)
        bad[index] = value
        with pytest.raises(RigProtocolError, match="BAD_ARGUMENT"):
            rig.request("CONFIG", *bad)
    _assert_still_answers_without_moving(rig, sim, before)
    # Nothing of them was applied: the rig homes to 0 inside the limits it has and reaches both
    # ends of the translation range.
    assert rig.home(timeout_s=120).homed
    assert rig.move_to(0.0, -10.0, timeout_s=90).translation_steps == -200
    assert rig.move_to(0.0, 10.0, timeout_s=90).translation_steps == 200
    # 0 on a bound is inside: accepted, and HOME still ends there.
    edge = list(good)
    edge[3], edge[4] = 0, 0  # rotation -8500..0, translation 0..10500
    rig.request("CONFIG", *edge)
    state = rig.home(timeout_s=120)
    assert state.homed and (state.rotation_steps, state.translation_steps) == (0, 0)


@pytest.mark.usefixtures("homed")
def test_config_that_leaves_the_rig_outside_its_limits_clears_the_home(rig, sim, caplog):
    # The rig stands on its soft maxima: 8.5 deg is 42.5 steps, rounded to 43 (8.6 deg). The same
    # CONFIG again (every connect sends it) keeps the home: the rig is where a MOVE may put it.
    rig.move_to(8.5, 10.5, timeout_s=90)
    rig.disconnect()
    log = "meld_core.hardware.reset_rig"
    rig = ResetRig(ResetRigConfig(port=sim.pty, **CONFIG))
    with caplog.at_level(logging.WARNING, logger=log):
        rig.connect()
    state = rig.status()
    assert state.homed and (state.rotation_steps, state.translation_steps) == (43, 210)
    assert "home" not in caplog.text
    rig.disconnect()
    # Narrower limits that end below where it stands: the rig keeps its place, forgets its home,
    # says so, and moves again only after HOME, which brings it back inside.
    narrow = ResetRig(ResetRigConfig(port=sim.pty, **{**CONFIG, "translation_limits_mm": (-10.5, 5.0)}))
    with caplog.at_level(logging.WARNING, logger=log):
        narrow.connect()
    try:
        state = narrow.status()
        assert not state.homed and state.state == "IDLE" and state.translation_steps == 210
        assert "cleared the home" in caplog.text and "outside the new soft limits" in caplog.text
        before = sim.count()
        with pytest.raises(RigNotHomedError, match="home the rig first"):
            narrow.move_to(0.0, 0.0)  # a target inside the new limits, but no home
        assert (sim.count().rot_pulses, sim.count().trans_pulses) == (before.rot_pulses, before.trans_pulses)
        state = narrow.home(timeout_s=120)
        assert state.homed and (state.rotation_steps, state.translation_steps) == (0, 0)
        assert narrow.move_to(0.0, 5.0, timeout_s=90).translation_steps == 100
    finally:
        narrow.disconnect()


@pytest.mark.usefixtures("homed")
def test_out_of_range_targets_are_refused(rig, sim):
    before = sim.count()
    with pytest.raises(RigLimitError, match="soft limits"):
        rig.move_to(9.0, 0.0)  # refused by the client
    with pytest.raises(RigLimitError, match="OUT_OF_RANGE"):
        rig.request("MOVE", 9000, 0)  # and by the firmware
    with pytest.raises(RigLimitError, match="OUT_OF_RANGE"):
        rig.request("MOVE", 0, -2_000_000)
    _assert_still_answers_without_moving(rig, sim, before)


def test_over_long_line_is_dropped(rig, sim, link):
    port = link[1][-1]
    port.log = b""
    before = sim.count()
    rig._write(b"MOVE 78 " + b"1" * 300 + b"\n")
    rig._write(b"X" * 2000)  # and 2000 bytes without a newline
    rig._write(b"\n")
    _assert_still_answers_without_moving(rig, sim, before)
    assert port.log.count(p_frame("ERR 0 2")) == 2  # LINE_TOO_LONG, once per long line


def p_frame(body: str) -> bytes:
    return proto.frame(body)


@pytest.mark.usefixtures("homed")
def test_a_repeated_command_is_answered_but_not_run_twice(rig, sim, link):
    port = link[1][-1]
    port.log = b""
    port.duplicate = 1  # the MOVE line goes out twice, as after a lost reply
    rig.move_to(4.0, 5.0, timeout_s=90)
    ok = [line for line in port.log.split(b"\n") if line.startswith(b"OK ") and b" 20 100*" in line]
    assert len(ok) == 2 and ok[0] == ok[1]  # the same reply twice (steps 20, 100) ...
    assert b"ERR" not in port.log  # ... and no BUSY: the repeat was not executed
    assert sim.count().trans_pos == 100


@pytest.mark.usefixtures("homed")
def test_host_silence_during_a_move_trips_the_watchdog(rig, sim):
    rig.move_to(-8.0, -10.0, timeout_s=90)
    args = list(rig.config.config_args())
    args[-1] = 100  # 0.1 s watchdog (the move takes ~0.35 s); same calibration: the rig stays homed
    rig.request("CONFIG", *args)
    try:
        start = sim.count()
        reply = rig.request("MOVE", 8000, 10000)  # raw: the client does not poll, the host is silent
        wait_for(lambda: sim.count().trans_pulses > start.trans_pulses, 30, "the move to start")
        stopped = wait_for(lambda: _halted(sim), 60, "the watchdog to halt the axes")
        assert stopped.trans_pos < 200  # the move never reached +10 mm
        with pytest.raises(RigAbortedError, match="WATCHDOG"):
            rig._wait_motion(reply.seq, "MOVE", 10.0)
        state = rig.status()
        assert state.error == "WATCHDOG" and state.state == "IDLE"
        assert (state.rotation_steps, state.translation_steps) == (stopped.rot_pos, stopped.trans_pos)
    finally:
        rig.request("CONFIG", *rig.config.config_args())


def _halted(sim):
    a = sim.count()
    time.sleep(0.25)
    b = sim.count()
    same = (a.rot_pulses, a.trans_pulses) == (b.rot_pulses, b.trans_pulses)
    return b if same and b.sim_ms > a.sim_ms else None


@pytest.mark.usefixtures("homed")
def test_emergency_stop_halts_disables_and_requires_homing(rig, sim):
    rig.move_to(-8.0, -10.0, timeout_s=90)
    start = sim.count()
    errors: list[BaseException] = []
    mover = threading.Thread(target=lambda: _capture(errors, rig.move_to, 8.0, 10.0, timeout_s=90))
    mover.start()
    wait_for(lambda: sim.count().trans_pulses > start.trans_pulses + 5, 60, "the move to start")
    sim.control("ESTOP 1")
    mover.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], RigEStopError)
    state = wait_for(lambda: (lambda s: s if s.estop else None)(rig.status()), 10, "ESTOP in STATUS")
    assert state.state == "ESTOP" and not state.homed
    assert sim.count().enabled == 0  # drivers off
    with pytest.raises(RigEStopError, match="release the emergency stop"):
        rig.home()
    sim.control("ESTOP 0")
    wait_for(lambda: not rig.status().estop, 10, "the e-stop release")
    with pytest.raises(RigNotHomedError):
        rig.move_to(0.0, 0.0)
    assert rig.home(timeout_s=120).homed


def test_jammed_switch_fails_homing(rig, sim):
    sim.control("JAM rot 1")
    try:
        before = sim.count()
        with pytest.raises(RigAbortedError, match="HOME_FAILED"):
            rig.home(timeout_s=120)
        after = sim.count()
        # It gave up after the firmware's maximum travel (30 deg) instead of running forever.
        assert after.rot_pulses - before.rot_pulses == proto.steps_from_milli(30000, 5000)
        assert not rig.status().homed
    finally:
        sim.control("JAM rot 0")
        sim.control("PLACE rot 0")  # a person puts the router back by hand
    assert rig.home(timeout_s=120).homed


@pytest.mark.usefixtures("homed")
def test_disconnect_leaves_the_rig_stopped(rig, sim, link):
    rig.move_to(-8.0, -10.0, timeout_s=90)
    start = sim.count()
    rig.request("MOVE", 8000, 10000)
    wait_for(lambda: sim.count().trans_pulses > start.trans_pulses + 5, 60, "the move to start")
    rig.disconnect()
    assert not rig.is_connected
    halted = sim.count()
    time.sleep(0.3)
    assert sim.count().trans_pulses == halted.trans_pulses
    rig.connect()  # the same calibration: still homed, reports how the motion ended
    state = rig.status()
    assert state.homed and state.error == "STOPPED" and state.state == "IDLE"
