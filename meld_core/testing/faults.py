"""Deterministic crashes for crash-safety tests of real processes.

    MELD_CRASH_AT=learner:gradient_step:7      # the learner SIGKILLs itself at its 7th gradient step
    MELD_CRASH_AT=actor:env_step:40            # the actor, in the middle of an episode

`<role>:<event>:<n>`: a trainer of that role ("actor", "learner" or "trainer" for alternate mode)
kills itself with SIGKILL (nothing after it runs: no checkpoint, no cleanup) at the n-th occurrence,
counted from its start, of the hook event `env_step`, `episode`, `gradient_step` or `iteration`.
The trainers install `CrashHook` only when the variable names their role.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from meld_core.train.hooks import TrainerHooks

logger = logging.getLogger(__name__)

ENV_VAR = "MELD_CRASH_AT"
EVENTS = ("env_step", "episode", "gradient_step", "iteration")


class CrashHook(TrainerHooks):
    """SIGKILL this process at the n-th `event` (see the module docstring)."""

    def __init__(self, event: str, n: int) -> None:
        if event not in EVENTS or n < 1:
            raise ValueError(f"{ENV_VAR}: event must be one of {EVENTS} and n >= 1, got {event!r} {n}")
        self.event, self.n, self.count = event, n, 0

    @classmethod
    def from_env(cls, role: str) -> CrashHook | None:
        spec = os.environ.get(ENV_VAR, "")
        if not spec:
            return None
        try:
            who, event, n = spec.split(":")
            n_int = int(n)
        except ValueError:
            raise ValueError(f"{ENV_VAR}={spec!r}: expected <role>:<event>:<n>") from None
        return cls(event, n_int) if who == role else None

    def _tick(self, event: str) -> None:
        if event == self.event:
            self.count += 1
            if self.count == self.n:
                logger.warning("%s: killing this process (pid %d) at %s %d", ENV_VAR, os.getpid(), event,
                               self.n)
                os.kill(os.getpid(), signal.SIGKILL)

    def on_env_step(self, trainer: Any) -> None:
        self._tick("env_step")

    def on_episode(self, trainer: Any, episode: Any) -> None:
        self._tick("episode")

    def on_gradient_step(self, trainer: Any, kind: str, metrics: dict[str, float]) -> None:
        self._tick("gradient_step")

    def on_iteration(self, trainer: Any) -> None:
        self._tick("iteration")
