"""Named crash points for the kill-anywhere tests: deterministic SIGKILLs instead of timed ones.

    MELD_CRASH_AT=checkpoint_written@2 meld train --run-dir runs/x --resume

`crash_point(name, detail)` marks a place where a kill would hurt (a file renamed but not yet
pointed at, an episode stored but not yet counted, ...). With `MELD_CRASH_AT=<name>[:<glob>][@<n>]`
in the environment the process SIGKILLs itself the n-th time (default: the first) it passes `name`
with a `detail` matching `glob` (fnmatch; default: any). Without the variable it does nothing, at
the cost of one dictionary lookup. Points in use: `before_rename` (detail: the target file name;
meld_core.files), `checkpoint_written` (the checkpoint file is in place, `latest` not yet moved),
`latest_written` (rotation not yet done), `episode_stored` (detail: the phase), `gradient_step`
(detail: "model" or "ac"), `env_step` (an environment step while collecting, inside an episode;
detail: the phase). In async mode only the actor passes `env_step` and `episode_stored`, only the
learner `gradient_step` (both pass the file-writing points).
"""

from __future__ import annotations

import fnmatch
import os
import signal

ENV_VAR = "MELD_CRASH_AT"

# Passes per matching point in this process; the only state, and only used when ENV_VAR is set.
_passes: dict[str, int] = {}


def crash_point(name: str, detail: str = "") -> None:
    """SIGKILL this process here if MELD_CRASH_AT names this point (see the module docstring)."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    target, _, count = spec.partition("@")
    point, _, pattern = target.partition(":")
    if point != name or (pattern and not fnmatch.fnmatchcase(detail, pattern)):
        return
    _passes[spec] = _passes.get(spec, 0) + 1
    if _passes[spec] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
