"""Thread counts for compiled libraries (boosters, numba kernels, torch).

``os.sched_getaffinity`` respects CPU affinity and container pinning, where
``os.cpu_count()`` reports the host's cores and oversubscribes.

A job that runs beside others gets a share of the cores, not all of them: parallel jobs
that each start one thread per core oversubscribe the machine (10-50x slow-downs measured
with OpenMP boosters). The launcher decides the share and passes it down in the
environment, read here when a component asks for "all cores" (``-1``):

1. ``FACTORY_THREADS``: set by the project's Ray launcher to the task's ``num_cpus``, or by
   hand (``FACTORY_THREADS=4 python run.py``);
2. ``OMP_NUM_THREADS``: set by joblib's loky workers (``hydra/launcher=joblib``) to
   ``cores // n_jobs``, and by Ray for its tasks.

An explicit thread count in a config (``model.n_jobs=4``) is used as given.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

THREADS_ENV = "FACTORY_THREADS"
BUDGET_ENVS = (THREADS_ENV, "OMP_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def job_budget() -> int | None:
    """The per-job thread budget a launcher set in the environment, else None."""
    for name in BUDGET_ENVS:
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = int(raw)
        except ValueError:
            log.warning("ignoring %s=%r: not an integer", name, raw)
            continue
        if value >= 1:
            return value
    return None


def resolve_threads(n_jobs: int | None = -1) -> int:
    """Threads to use: ``-1``/``None`` = this job's share of the cores, else ``n_jobs``.

    The share is the launcher's budget (``FACTORY_THREADS``, else ``OMP_NUM_THREADS``),
    capped by the cores this process may use; without a budget, all of those cores.
    """
    if n_jobs in (-1, None):
        cores = available_cores()
        budget = job_budget()
        return cores if budget is None else max(1, min(budget, cores))
    return max(1, int(n_jobs))
