"""The fixed (not searched) part of a sweep's config, stored with its study.

A study compares trials; that only means something when every trial ran on the same data
and setup. The sweeper stores the flattened job config, minus the searched keys and the
keys that change no result (``fixed_config_ignore``), as the study's user attribute
``fixed_config`` when it creates the study. A later run with the same study name (a resume,
or another worker) must have the same fixed config: otherwise it stops and names the keys
that differ, instead of silently adding trials on other data to the study.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

USER_ATTR = "fixed_config"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        if not node and prefix:
            out[prefix[:-1]] = {}
        return out
    return {prefix[:-1]: node}


def _bare(key: str) -> str:
    """``+model.lr@pkg`` -> ``model.lr``: the config path an override key refers to."""
    return key.lstrip("+~").split("@", 1)[0]


def fixed_config(job_cfg: DictConfig, searched: Iterable[str],
                 ignore: Iterable[str]) -> dict[str, Any]:
    """Dotted key -> value (interpolations unresolved: the keys they point at are compared
    themselves) of a job config without ``hydra``, the searched keys and ``ignore``."""
    data = OmegaConf.to_container(job_cfg, resolve=False, enum_to_str=True)
    assert isinstance(data, dict)
    data.pop("hydra", None)
    drop = [_bare(k) for k in (*searched, *ignore)]
    flat = {k: v for k, v in sorted(_flatten(data).items())
            if not any(k == d or k.startswith(f"{d}.") for d in drop)}
    return json.loads(json.dumps(flat, default=str))  # as it reads back from the storage


def config_hash(fixed: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:8]


def differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: stored -> current`` lines, keys sorted."""
    keys = sorted(set(stored) | set(current))
    missing = "<absent>"
    return [f"{k}: {stored.get(k, missing)!r} -> {current.get(k, missing)!r}"
            for k in keys if stored.get(k, missing) != current.get(k, missing)]


def mismatch_message(study_name: str, storage: str, diffs: list[str], new_hash: str,
                     limit: int = 8) -> str:
    shown = "; ".join(diffs[:limit]) + (f"; and {len(diffs) - limit} more" if
                                        len(diffs) > limit else "")
    return (
        f"study '{study_name}' in {storage} holds trials of another fixed config "
        f"({len(diffs)} keys differ: {shown}). Adding trials would compare runs on different "
        f"data or setups. Restore those settings to resume it, or start a study for this config: "
        f"hydra.sweeper.study_name={study_name}_{new_hash}"
    )
