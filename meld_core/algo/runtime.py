"""How a learner or actor process uses the CPU: the memory allocator, torch's threads, the cores.

- `cache_freed_memory()`: glibc's malloc returns every block above 32 MB to the OS (mmap/munmap),
  so each large activation or gradient of a model step is page-faulted in anew; a reference-size
  step spent ~15 % of its CPU time there. Serving all blocks from the heap and never trimming it
  keeps freed memory for the next step (the process keeps its peak size).
- `plan_cpus()` / `pin_to()`: in async mode the actor and the learner run side by side. Two OpenMP
  thread pools on the same cores preempt each other inside their barriers (the learner ran 7x
  slower next to other jobs), so the actor gets its own core(s) and the learner the others, each
  with as many torch threads as cores, and `openmp_env()` makes idle OpenMP threads sleep instead
  of spinning (libgomp's OMP_WAIT_POLICY; KMP_BLOCKTIME for Intel's runtime). That environment is
  read when the OpenMP runtime loads: it is set for a child process before it starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters


def cache_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring). False where it cannot."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    if not ok:
        logger.warning("mallopt failed: large tensors are page-faulted in anew at every step")
    return ok


def usable_cpus() -> list[int]:
    """The cores this process may run on (its affinity mask), in order."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuPlan:
    """Cores and torch threads of the two async processes (cores may be shared when there is one)."""

    actor_cpus: tuple[int, ...]
    learner_cpus: tuple[int, ...]
    actor_threads: int
    learner_threads: int


def plan_cpus(actor_threads: int = 1, learner_threads: int | None = None, pin: bool = True,
              cpus: list[int] | None = None) -> CpuPlan:
    """The actor on the first `actor_threads` usable cores, the learner on the rest; with a single
    core, or `pin=False`, both may use every core. The learner's threads default to its core count."""
    cpus = list(cpus if cpus is not None else usable_cpus())
    if pin and len(cpus) > actor_threads:
        actor, learner = tuple(cpus[:actor_threads]), tuple(cpus[actor_threads:])
    else:
        actor = learner = tuple(cpus)
    return CpuPlan(actor, learner, actor_threads, learner_threads or len(learner))


def pin_to(cpus: tuple[int, ...], threads: int) -> None:
    """Restrict this thread (and the threads it starts from now on, OpenMP's included) to `cpus` and
    give torch `threads` threads."""
    import torch

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    torch.set_num_threads(threads)


def openmp_env(threads: int) -> dict[str, str]:
    """Environment for a child process: `threads` OpenMP threads that sleep when idle."""
    return {"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0",
            "MKL_NUM_THREADS": str(threads)}
