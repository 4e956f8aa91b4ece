"""How async processes share the cores, and the allocator setting."""

import torch

from meld_core.algo.runtime import cache_freed_memory, openmp_env, plan_cpus


def test_the_actor_gets_its_own_core_and_the_learner_the_others():
    plan = plan_cpus(cpus=[0, 1, 2, 3])
    assert plan.actor_cpus == (0,) and plan.learner_cpus == (1, 2, 3)
    assert plan.actor_threads == 1 and plan.learner_threads == 3
    two = plan_cpus(actor_threads=1, learner_threads=None, cpus=[4, 5])
    assert two.actor_cpus == (4,) and two.learner_cpus == (5,) and two.learner_threads == 1


def test_one_core_or_no_pinning_shares_every_core():
    assert plan_cpus(cpus=[3]).actor_cpus == plan_cpus(cpus=[3]).learner_cpus == (3,)
    shared = plan_cpus(pin=False, cpus=[0, 1], learner_threads=2)
    assert shared.actor_cpus == shared.learner_cpus == (0, 1) and shared.learner_threads == 2


def test_openmp_threads_sleep_when_idle():
    env = openmp_env(3)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "3"


def test_allocator_cache_keeps_tensors_working():
    cache_freed_memory()  # idempotent; True on glibc
    x = torch.ones(64, 1024, 1024)  # 256 MB: served from the heap, not mmap
    assert float(x.sum()) == 64 * 1024 * 1024
