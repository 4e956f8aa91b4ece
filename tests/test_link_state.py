"""success_node's logic: link state from a fake /sys/class/net tree, debounced."""

import pytest

from meld_core.hardware.link_state import LinkStateConfig, LinkStateError, LinkStateMonitor


def make_iface(root, name="eth1", carrier="0", operstate="down"):
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "carrier").write_text(carrier + "\n")
    (d / "operstate").write_text(operstate + "\n")
    return d


def test_reads_carrier_and_operstate(tmp_path):
    d = make_iface(tmp_path, carrier="1", operstate="up")
    mon = LinkStateMonitor(LinkStateConfig(interface="eth1", sysfs_root=str(tmp_path)))
    reading = mon.read()
    assert reading.up and reading.carrier and reading.operstate == "up"
    (d / "operstate").write_text("lowerlayerdown\n")
    assert not mon.read().up


def test_unreadable_carrier_counts_as_down(tmp_path):
    d = make_iface(tmp_path, operstate="down")
    (d / "carrier").unlink()  # the kernel raises EINVAL reading carrier of a down interface
    mon = LinkStateMonitor(LinkStateConfig(interface="eth1", sysfs_root=str(tmp_path)))
    assert not mon.read().up and not mon.read().carrier


def test_unknown_operstate_policy(tmp_path):
    make_iface(tmp_path, carrier="1", operstate="unknown")
    assert LinkStateMonitor(LinkStateConfig(interface="eth1", sysfs_root=str(tmp_path))).read().up
    strict = LinkStateConfig(interface="eth1", sysfs_root=str(tmp_path), accept_unknown_operstate=False)
    assert not LinkStateMonitor(strict).read().up


def test_debounce(tmp_path):
    d = make_iface(tmp_path)
    mon = LinkStateMonitor(LinkStateConfig(interface="eth1", sysfs_root=str(tmp_path), debounce_reads=2))
    assert mon.poll() is False
    (d / "carrier").write_text("1\n")
    (d / "operstate").write_text("up\n")
    assert mon.poll() is False  # one read is not enough
    assert mon.poll() is True
    (d / "carrier").write_text("0\n")
    assert mon.poll() is True  # a single glitch does not flip it
    (d / "carrier").write_text("1\n")
    assert mon.poll() is True and mon.transitions == 1


def test_missing_interface_lists_the_available_ones(tmp_path):
    make_iface(tmp_path, name="enp3s0")
    mon = LinkStateMonitor(LinkStateConfig(interface="eth9", sysfs_root=str(tmp_path)))
    with pytest.raises(LinkStateError, match="enp3s0"):
        mon.read()


@pytest.mark.parametrize(
    "bad", [dict(interface=""), dict(interface="../x"), dict(poll_hz=0), dict(debounce_reads=0)]
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        LinkStateConfig(**bad)
