"""``task=promote`` / ``task=rollback`` / ``task=registry``: the model registry from the CLI.

    python run.py task=promote bundle=<run>/bundle reason="beats v3 on val"
    python run.py task=rollback name=xgboost_h20_MES-MGC reason="v5 drifted"
    python run.py task=registry                      # names, versions, live, history

``promote`` runs the validation gate (:mod:`factory.bundle.gate`) first and refuses with
the failed checks listed; the registry itself is :class:`factory.registry.Registry`.
"""

from __future__ import annotations

import json
import logging

import pandas as pd
from omegaconf import DictConfig

from factory.bundle.promote import promote_bundle
from factory.errors import FactoryError
from factory.registry import Registry
from factory.tasks.common import load_bundle, run_dir

log = logging.getLogger(__name__)


def promote(cfg: DictConfig) -> float:
    reason = str(cfg.get("reason") or "")
    if not reason:
        raise FactoryError('`reason` is required for a promotion: add reason="why this '
                           'bundle should serve" (it goes to the registry history)')
    return float(promote_bundle(cfg, load_bundle(cfg), reason))


def rollback(cfg: DictConfig) -> float:
    name = cfg.registry.get("name") or cfg.get("name")
    if not name or name == "rollback":
        raise FactoryError("`name` is required: the registry name to roll back, e.g. "
                           "`task=rollback name=xgboost_h20_MES-MGC` (task=registry lists them)")
    version = Registry(cfg.registry.path).rollback(str(name), str(cfg.get("reason") or ""))
    log.info("rolled %s back: version %d is live", name, version)
    return float(version)


def listing(cfg: DictConfig) -> float:
    registry = Registry(cfg.registry.path)
    names = registry.names()
    doc = {n: {"live": registry.live(n), "versions": registry.versions(n),
               "history": registry.history(n)} for n in names}
    (run_dir(cfg) / "registry.json").write_text(json.dumps(doc, indent=2, default=str))
    if not names:
        log.info("registry %s is empty: promote a bundle with `task=promote bundle=<dir> "
                 "reason=...`", cfg.registry.path)
    for n in names:
        rows = pd.DataFrame(doc[n]["history"])
        cols = [c for c in ("when", "who", "action", "version", "previous", "why") if c in rows]
        log.info("%s: live version %s of %s\n%s", n, doc[n]["live"], doc[n]["versions"],
                 rows[cols].to_string(index=False) if len(rows) else "(no history)")
    return float(len(names))
