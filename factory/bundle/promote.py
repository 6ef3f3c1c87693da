"""Promotion: the validation gate, then the registry (used by ``task=promote`` and by a
training run with ``+promote=true``)."""

from __future__ import annotations

import logging

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.bundle.gate import run_gate
from factory.errors import FactoryError
from factory.registry import Registry

log = logging.getLogger(__name__)


def gate_table(results: list[dict]) -> str:
    def show(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    frame = pd.DataFrame(results)[["check", "passed", "value", "limit", "detail"]]
    return frame.to_string(index=False, formatters={"value": show, "limit": show})


def promote_bundle(cfg: DictConfig, bundle, reason: str) -> int:
    """Gate, then promote ``bundle`` under its name (``registry.name`` overrides)."""
    gate = OmegaConf.to_container(cfg.registry.gate, resolve=True)
    results = run_gate(bundle, **gate)
    log.info("promotion gate for %s:\n%s", bundle.name, gate_table(results))
    failed = [r for r in results if not r["passed"]]
    if failed:
        listed = "; ".join(f"{r['check']}: {r['value']} (limit {r['limit']})" for r in failed)
        raise FactoryError(f"bundle {bundle.path} not promoted: failed check(s) {listed}; "
                           f"see the gate table above (limits in `registry.gate`)")
    name = cfg.registry.get("name") or bundle.name
    version = Registry(cfg.registry.path).promote(
        name, bundle.path, reason, run=bundle.manifest.get("run"), gate={
            r["check"]: r["value"] for r in results})
    log.info("promoted %s as %s version %d (live) in %s", bundle.path, name, version,
             cfg.registry.path)
    return version




class PromoteOutput:
    """With ``+promote=true``: after training, gate and promote the run's bundle (one command
    from nothing to a live bundle). ``reason`` defaults to saying so."""

    def __init__(self, enabled: bool = False, reason: str = "promoted after training") -> None:
        self.enabled, self.reason = enabled, reason

    def write(self, result) -> None:
        if not self.enabled:
            return
        from factory.bundle.reader import Bundle

        bundle = Bundle.load(result.out_dir / "bundle",
                             trusted_modules=list(result.cfg.get("trusted_modules") or []))
        promote_bundle(result.cfg, bundle, str(self.reason))
