"""The reset-rig client against a scripted peer on a real pseudo-terminal (no firmware): handshake,
exact bytes sent, retries after damaged lines, deadlines, typed errors; and the FakeResetRig."""

from __future__ import annotations

import logging
import os
import threading
import time
import tty

import pytest

from meld_core.hardware import rig_protocol as p
from meld_core.hardware.reset_rig import (
    ResetRig,
    ResetRigConfig,
    RigAbortedError,
    RigConnectionError,
    RigLimitError,
    RigNotHomedError,
    RigProtocolError,
    RigTimeoutError,
)
from meld_core.testing.fake_reset_rig import FakeResetRig

FAST = dict(reply_timeout_s=0.3, retries=2, connect_timeout_s=2.0, poll_interval_s=0.05,
            move_timeout_s=3.0, home_timeout_s=3.0)


class Peer:
    """Plays the rig on the master side of a pty. `script(name, seq, args)` returns lines to send."""

    def __init__(self, script):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.script = script
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send(self, data: bytes):
        os.write(self.master, data)

    def _run(self):
        import select

        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                buf += os.read(self.master, 1024)
            except OSError:
                return
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self.received.append(line + b"\n")
                body = line.rsplit(b"*", 1)[0].decode()
                name, seq, *args = body.split(" ")
                for out in self.script(name, int(seq), [int(a) for a in args]) or ():
                    self.send(out)

    def commands(self) -> list[str]:
        return [line.split(b" ")[0].decode() for line in self.received]

    def close(self):
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


def good_rig(state: dict | None = None):
    """A well-behaved rig: homed after HOME, motions end at once."""
    st = {"homed": 0, "rot": 0, "trans": 0, "motion": 0, "code": 0}
    st.update(state or {})

    def script(name, seq, args):
        ok = p.encode_reply
        if name == "HELLO":
            return [ok(p.Reply(seq, 0, (str(p.PROTOCOL_VERSION), "1.0.0")))]
        if name == "STATUS":
            return [ok(p.Reply(seq, 0, ("IDLE", str(st["homed"]), str(st["rot"]), str(st["trans"]),
                                        "0", "0", str(st["motion"]), str(st["code"]), "0")))]
        if name == "CONFIG":
            return [ok(p.Reply(seq, 0, (str(st.get("home_cleared", 0)),)))]
        if name == "STOP":
            return [ok(p.Reply(seq, 0))]
        if name == "HOME":
            st.update(homed=1, rot=0, trans=0, motion=seq)
            return [ok(p.Reply(seq, 0)), p.encode_event("DONE", seq, 0, 0)]
        if name == "MOVE":
            if not st["homed"]:
                return [ok(p.Reply(seq, p.ERROR_CODES["NOT_HOMED"]))]
            st.update(rot=args[0], trans=args[1], motion=seq)
            return [ok(p.Reply(seq, 0, ("0", "0"))), p.encode_event("DONE", seq, args[0], args[1])]
        return [ok(p.Reply(seq, p.ERROR_CODES["UNKNOWN_COMMAND"]))]

    return script


@pytest.fixture()
def peer_factory():
    peers = []

    def make(script):
        peers.append(Peer(script))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


def connect(peer, **overrides) -> ResetRig:
    rig = ResetRig(ResetRigConfig(port=peer.path, **{**FAST, **overrides}))
    rig.connect()
    return rig


def test_handshake_sends_hello_then_config_exact_bytes(peer_factory):
    peer = peer_factory(good_rig())
    rig = connect(peer)
    try:
        assert rig.is_connected and rig.firmware_version == "1.0.0"
        hello, config = peer.received[:2]
        seq = int(hello.split(b" ")[1])
        assert hello == p.encode_command(seq, "HELLO", p.PROTOCOL_VERSION)
        assert config == p.encode_command(seq + 1, "CONFIG", 26667, 80000, -8500, 8500, -10500, 10500,
                                          -9500, -11500, 1000)
    finally:
        rig.disconnect()
    assert peer.commands()[-1] == "STOP"  # disconnect leaves the rig stopped
    assert not rig.is_connected


def test_home_move_status_through_the_client(peer_factory):
    peer = peer_factory(good_rig())
    with ResetRig(ResetRigConfig(port=peer.path, **FAST)) as rig:
        with pytest.raises(RigNotHomedError, match="home the rig first"):
            rig.move_to(1.0, 1.0)
        assert rig.home().homed
        state = rig.move_to(3.0, -5.0)
        assert (state.rotation_deg, state.translation_mm) == (3.0, -5.0)
        move = [line for line in peer.received if line.startswith(b"MOVE")][-1]
        assert move == p.encode_command(int(move.split(b" ")[1]), "MOVE", 3000, -5000)


def test_damaged_reply_is_retried_with_the_same_seq(peer_factory):
    calls = []

    def script(name, seq, args):
        calls.append((name, seq))
        if name == "STATUS" and sum(1 for c in calls if c[0] == "STATUS") == 1:
            return [b"OK %d IDLE 1 0 0 0 0 0 0 0*00\n" % seq]  # wrong checksum
        return good_rig({"homed": 1})(name, seq, args)

    rig = connect(peer_factory(script))
    try:
        assert rig.status().homed
        statuses = [c for c in calls if c[0] == "STATUS"]
        assert len(statuses) == 2 and statuses[0][1] == statuses[1][1]  # resent, same seq
    finally:
        rig.disconnect()


def test_checksum_error_from_the_rig_is_retried_then_reported(peer_factory):
    def script(name, seq, args):
        if name == "STATUS":
            return [p.encode_reply(p.Reply(0, p.ERROR_CODES["BAD_CHECKSUM"]))]
        return good_rig()(name, seq, args)

    peer = peer_factory(script)
    rig = connect(peer)
    try:
        with pytest.raises(RigProtocolError, match="damaged lines .* check the USB cable"):
            rig.status()
        assert peer.commands().count("STATUS") == 1 + FAST["retries"]
    finally:
        rig.disconnect()


def test_silent_rig_times_out_with_a_clear_message(peer_factory):
    peer = peer_factory(lambda name, seq, args: None)
    rig = ResetRig(ResetRigConfig(port=peer.path, **FAST))
    start = time.monotonic()
    with pytest.raises(RigTimeoutError, match="no handshake .* firmware"):
        rig.connect()
    assert time.monotonic() - start < FAST["connect_timeout_s"] + 2
    assert not rig.is_connected


def test_version_mismatch_says_to_flash(peer_factory):
    def script(name, seq, args):
        return [p.encode_reply(p.Reply(seq, p.ERROR_CODES["VERSION_MISMATCH"]))]

    rig = ResetRig(ResetRigConfig(port=peer_factory(script).path, **FAST))
    with pytest.raises(RigProtocolError, match="make -C hardware/reset_rig flash"):
        rig.connect()


def test_hello_answered_with_another_protocol_is_a_mismatch(peer_factory):
    def script(name, seq, args):
        if name == "HELLO":
            return [p.encode_reply(p.Reply(seq, 0, (str(p.PROTOCOL_VERSION - 1), "1.0.0")))]
        return good_rig()(name, seq, args)

    peer = peer_factory(script)
    rig = ResetRig(ResetRigConfig(port=peer.path, **FAST))
    with pytest.raises(RigProtocolError, match="not protocol .* make -C hardware/reset_rig flash") as info:
        rig.connect()
    assert info.value.code == p.ERROR_CODES["VERSION_MISMATCH"]
    assert "CONFIG" not in peer.commands() and not rig.is_connected


def test_config_that_clears_the_home_is_reported(peer_factory, caplog):
    peer = peer_factory(good_rig({"home_cleared": 1, "trans": 10500}))
    with caplog.at_level(logging.WARNING, logger="meld_core.hardware.reset_rig"):
        rig = connect(peer)
    try:
        assert "CONFIG cleared the home" in caplog.text and "10.500 mm" in caplog.text
        assert not rig.status().homed
        with pytest.raises(RigNotHomedError, match="home the rig first"):
            rig.move_to(0.0, 0.0)
    finally:
        rig.disconnect()


def test_config_kept_home_logs_nothing_and_malformed_reply_is_refused(peer_factory, caplog):
    with caplog.at_level(logging.WARNING, logger="meld_core.hardware.reset_rig"):
        connect(peer_factory(good_rig({"homed": 1}))).disconnect()
    assert caplog.text == ""

    def v1_config(name, seq, args):  # protocol 1 answered CONFIG without home_cleared
        if name == "CONFIG":
            return [p.encode_reply(p.Reply(seq, 0))]
        return good_rig()(name, seq, args)

    rig = ResetRig(ResetRigConfig(port=peer_factory(v1_config).path, **FAST))
    with pytest.raises(RigProtocolError, match="malformed CONFIG reply"):
        rig.connect()
    assert not rig.is_connected


def test_lost_motion_report_is_found_by_status_polling(peer_factory):
    inner = good_rig({"homed": 1})

    def script(name, seq, args):
        return inner(name, seq, args)[:1]  # the DONE event never arrives

    rig = connect(peer_factory(script))
    try:
        assert rig.move_to(2.0, 2.0).rotation_deg == 2.0
    finally:
        rig.disconnect()


def test_aborted_motion_raises_with_the_reason(peer_factory):
    def script(name, seq, args):
        if name == "MOVE":
            return [p.encode_reply(p.Reply(seq, 0, ("0", "0"))),
                    p.encode_event("ABORT", seq, p.ERROR_CODES["WATCHDOG"], 100, 200)]
        return good_rig({"homed": 1})(name, seq, args)

    rig = connect(peer_factory(script))
    try:
        with pytest.raises(RigAbortedError, match="WATCHDOG"):
            rig.move_to(2.0, 2.0)
    finally:
        rig.disconnect()


def test_motion_that_never_ends_times_out_and_stops(peer_factory):
    def script(name, seq, args):
        if name == "MOVE":
            return [p.encode_reply(p.Reply(seq, 0, ("0", "0")))]
        if name == "STATUS":
            return [p.encode_reply(p.Reply(seq, 0, ("MOVING", "1", "0", "0", "0", "0", "9", "0", "0")))]
        return good_rig({"homed": 1})(name, seq, args)

    peer = peer_factory(script)
    rig = connect(peer)
    try:
        with pytest.raises(RigTimeoutError, match="did not finish within 0.5 s; the rig was stopped"):
            rig.move_to(2.0, 2.0, timeout_s=0.5)
        assert "STOP" in peer.commands()
    finally:
        rig.disconnect()


def test_reboot_during_a_session_is_a_connection_error(peer_factory):
    peer = peer_factory(good_rig())
    rig = connect(peer)
    peer.send(p.encode_event("BOOT", 1, "1.0.0"))
    deadline = time.monotonic() + 5
    while rig.is_connected and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RigConnectionError, match="rebooted .* home again"):
        rig.status()
    rig.disconnect()


def test_unplugged_device_is_a_connection_error(peer_factory):
    peer = peer_factory(good_rig())
    rig = connect(peer)
    peer.close()  # the USB cable is pulled
    with pytest.raises(RigConnectionError, match="check the USB cable"):
        for _ in range(50):  # the reader notices at its next read
            rig.status()
            time.sleep(0.05)
    assert not rig.is_connected
    rig.disconnect()  # closes without hanging


def test_out_of_range_target_is_refused_before_sending(peer_factory):
    peer = peer_factory(good_rig({"homed": 1}))
    rig = connect(peer)
    try:
        for rot, trans in ((9.0, 0.0), (0.0, -11.0), (float("nan"), 0.0)):
            with pytest.raises(RigLimitError, match="soft limits"):
                rig.move_to(rot, trans)
        assert "MOVE" not in peer.commands()
    finally:
        rig.disconnect()


def test_missing_port_is_a_connection_error_with_next_step():
    rig = ResetRig(ResetRigConfig(port="/dev/does-not-exist-rig"))
    with pytest.raises(RigConnectionError, match="dialout"):
        rig.connect()
    with pytest.raises(RigConnectionError, match="not connected"):
        rig.status()


@pytest.mark.parametrize("bad", [
    dict(steps_per_deg=0.0), dict(rotation_limits_deg=(5.0, -5.0)), dict(rotation_home_deg=0.0),
    dict(rotation_limits_deg=(1.0, 8.5)), dict(translation_limits_mm=(-10.5, -3.0)),  # without 0
    dict(poll_interval_s=0.5, watchdog_s=1.0), dict(retries=-1), dict(port=""),
])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        ResetRigConfig(**bad)


def test_fake_rig_interface_and_faults():
    rig = FakeResetRig()
    with pytest.raises(RigConnectionError):
        rig.status()
    with rig:
        with pytest.raises(RigNotHomedError):
            rig.move_to(1.0, 1.0)
        assert rig.home().homed
        state = rig.move_to(3.0, -5.0)
        assert (state.rotation_deg, state.translation_mm, state.rotation_steps) == (3.0, -5.0, 80)
        with pytest.raises(RigLimitError):
            rig.move_to(20.0, 0.0)
        rig.fail_next("WATCHDOG")
        with pytest.raises(RigAbortedError, match="WATCHDOG"):
            rig.move_to(1.0, 1.0)
        rig.fail_next("TIMEOUT")
        with pytest.raises(RigTimeoutError):
            rig.home()
        rig.press_estop()
        assert rig.status().estop and not rig.status().homed
        rig.release_estop()
        rig.fail_next("DISCONNECT")
        with pytest.raises(RigConnectionError):
            rig.home()
        assert not rig.is_connected
    assert ("move_to", 3.0, -5.0) in rig.calls


def test_fake_rig_stop_interrupts_a_timed_motion():
    rig = FakeResetRig(motion_time_s=5.0)
    rig.connect()
    rig._homed = True
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(RigAbortedError, rig.move_to, 1.0, 1.0)))
    t.start()
    deadline = time.monotonic() + 5
    while not rig.status().moving and time.monotonic() < deadline:
        time.sleep(0.01)
    rig.stop()
    t.join(timeout=5)
    assert not t.is_alive() and errors and "STOPPED" in str(errors[0].value)


def test_cli_rig_commands_over_a_pty(peer_factory, capsys):
    from meld_core import cli

    peer = peer_factory(good_rig())
    assert cli.main(["rig", "home", "--port", peer.path]) == 0
    assert "homed=True" in capsys.readouterr().out
    args = ["rig", "move", "--port", peer.path, "--rotation-deg", "3", "--translation-mm", "-5", "--home"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "rotation=+3.000 deg" in out and "translation=-5.000 mm" in out
    assert cli.main(["rig", "status", "--port", "/dev/does-not-exist-rig"]) == 2
    assert "dialout" in capsys.readouterr().err
