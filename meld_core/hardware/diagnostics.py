"""ROS-free diagnostic records; `meld_ros` turns them into diagnostic_msgs/DiagnosticStatus.

Drivers and bridges in `meld_core` report their health as a `DiagStatus` (a level, a one-line
message, string key/values), so the same counters are visible in tests, logs and `/diagnostics`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class DiagLevel(enum.IntEnum):
    """Same numbers as diagnostic_msgs/DiagnosticStatus OK/WARN/ERROR/STALE."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class DiagStatus:
    """The health of one component at one moment."""

    level: DiagLevel  # overall level
    message: str  # one line for a human
    values: dict[str, str] = field(default_factory=dict)  # counters and facts, as strings
