"""Thread counts for compiled libraries (boosters, numba kernels).

``os.sched_getaffinity`` respects CPU affinity and container pinning, where
``os.cpu_count()`` reports the host's cores and oversubscribes.
"""

from __future__ import annotations

import os


def resolve_threads(n_jobs: int | None = -1) -> int:
    """Threads to use: ``-1``/``None`` = the cores this process may use, else ``n_jobs``."""
    if n_jobs in (-1, None):
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    return max(1, int(n_jobs))
