"""On-disk cache of Phase-1 datasets keyed by a hash of the configs that shape them.

A multirun over many models shares one data/features/labeling/split config, so Phase 1 is
computed once and every later job loads it (``phase1 cache hit <key>`` in the log). Writes
go to a temporary directory renamed into place, so parallel jobs never see half a dataset,
and :meth:`Phase1Cache.lock` serialises jobs that need the same key: parallel workers
(joblib, Ray, several sweep processes on one file system) compute a key once, the others
wait for the lock and then read the stored entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)

# Bump when Phase-1 code changes what it produces for the same config.
PHASE1_VERSION = 6  # 6: val and test the same size after the gaps (splits/holdout.py)


def config_hash(*parts: Any, length: int = 16) -> str:
    """Stable hash of config nodes (resolved, keys sorted) and plain values."""
    plain = [
        OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig | ListConfig) else p
        for p in parts
    ]
    blob = json.dumps(plain, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


class Phase1Cache:
    """Directory of cached datasets: ``<root>/phase1/<key>/``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "phase1"

    def path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return (self.path(key) / "info.json").is_file()

    def store(self, key: str, save_fn) -> Path:
        """Write via ``save_fn(tmp_dir)`` then atomically move into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            save_fn(tmp)
            target = self.path(key)
            if target.exists():  # another job finished first: keep its copy
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return self.path(key)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the key's file lock (``<root>/.<key>.lock``) for a check-then-build.

        A second process that needs the same key blocks here until the first has stored
        the entry, then finds it with :meth:`exists`. The lock is an OS-level ``flock``:
        the kernel releases it when its holder dies, so a killed worker never leaves the
        key locked.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        file_lock = FileLock(str(self.root / f".{key}.lock"))
        try:
            file_lock.acquire(timeout=0)
        except Timeout:
            log.info("phase1 %s is being computed by another job; waiting for it", key)
            t0 = time.perf_counter()
            file_lock.acquire()
            log.info("phase1 %s: waited %.1f s for the other job", key, time.perf_counter() - t0)
        try:
            yield
        finally:
            file_lock.release()
