"""Insertion success from the Ethernet link state of the port the cable plugs into (no ROS).

    mon = LinkStateMonitor(LinkStateConfig(interface="enx00e04c680001"))
    mon.read()   # LinkReading(up=True, carrier=True, operstate="up")

The inserted cable connects the router port to a network interface on the robot PC; when the plug
seats, the kernel reports carrier. Linux exposes this in sysfs: `/sys/class/net/<iface>/carrier`
("1"/"0"; reading it raises EINVAL while the interface is administratively down) and
`/sys/class/net/<iface>/operstate` ("up", "down", "dormant", "lowerlayerdown", "unknown", ...).
A link counts as up only when carrier is 1 and operstate is "up" (or "unknown", which some USB NICs
report while passing traffic), for `debounce_reads` consecutive reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


class LinkStateError(RuntimeError):
    """The network interface does not exist (or sysfs is unreadable)."""


@dataclass(frozen=True)
class LinkStateConfig:
    """Which interface tells success, and how it is read."""

    interface: str = "eth1"  # network interface the router port's cable connects to (see `ip link`)
    sysfs_root: str = "/sys/class/net"  # where interfaces are listed (tests point this at a fake tree)
    poll_hz: float = 10.0  # link-state reads per second
    debounce_reads: int = 2  # consecutive equal reads before the published state changes
    accept_unknown_operstate: bool = True  # count operstate "unknown" with carrier as up (some USB NICs)

    def __post_init__(self) -> None:
        if not self.interface or "/" in self.interface:
            raise ValueError(f"LinkStateConfig.interface must be an interface name, got {self.interface!r}")
        if not 0 < self.poll_hz <= 100:
            raise ValueError(f"LinkStateConfig.poll_hz must be in (0, 100], got {self.poll_hz}")
        if self.debounce_reads < 1:
            raise ValueError("LinkStateConfig.debounce_reads must be >= 1")


@dataclass(frozen=True)
class LinkReading:
    up: bool  # carrier present and operstate up
    carrier: bool  # raw carrier flag (False when unreadable)
    operstate: str  # raw operstate text


class LinkStateMonitor:
    """Reads carrier + operstate and debounces them into a success flag."""

    def __init__(self, config: LinkStateConfig) -> None:
        self.config = config
        self._dir = os.path.join(config.sysfs_root, config.interface)
        self._stable: bool | None = None
        self._candidate: bool | None = None
        self._count = 0
        self.transitions = 0

    def check(self) -> None:
        """Raise LinkStateError when the interface is not there."""
        if not os.path.isdir(self._dir):
            root = self.config.sysfs_root
            available = sorted(os.listdir(root)) if os.path.isdir(root) else []
            raise LinkStateError(
                f"network interface {self.config.interface!r} not found under {self.config.sysfs_root}; "
                f"available: {available}. Set the success_node parameter `interface`.")

    def _read_text(self, name: str) -> str | None:
        try:
            with open(os.path.join(self._dir, name)) as f:
                return f.read().strip()
        except OSError:  # carrier raises EINVAL while the interface is down
            return None

    def read(self) -> LinkReading:
        self.check()
        carrier = self._read_text("carrier") == "1"
        operstate = (self._read_text("operstate") or "unknown").lower()
        ok_states = ("up", "unknown") if self.config.accept_unknown_operstate else ("up",)
        return LinkReading(up=carrier and operstate in ok_states, carrier=carrier, operstate=operstate)

    def poll(self) -> bool:
        """Read once; return the debounced state (the first read sets it directly)."""
        up = self.read().up
        if self._stable is None:
            self._stable = up
            return up
        if up == self._stable:
            self._candidate, self._count = None, 0
            return self._stable
        if up == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = up, 1
        if self._count >= self.config.debounce_reads:
            self._stable = up
            self._candidate, self._count = None, 0
            self.transitions += 1
        return self._stable
