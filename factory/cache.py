"""On-disk cache of Phase-1 datasets keyed by a hash of the configs that shape them.

A multirun over many models shares one data/features/labeling/split config, so Phase 1 is
computed once and every later job loads it (``phase1 cache hit <key>`` in the log). Writes
go to a temporary directory renamed into place, so parallel jobs never see half a dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)

# Bump when Phase-1 code changes what it produces for the same config.
PHASE1_VERSION = 5


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
