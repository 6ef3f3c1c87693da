"""The validation gate a bundle passes before it is promoted to the registry.

Pre-production checks (each a named result with its value and limit):

* ``features``: every feature group the bundle needs is in this code's registry and reads
  only the input schema's columns (OHLCV);
* ``not_degenerate``: on its test period no class wins more than ``max_class_share`` of the
  predictions;
* ``min_metrics``: each configured ``split.metric`` at least its minimum;
* ``val_test_gap``: the objective's validation-to-test gap within ``max_gap`` (relative);
* ``parity``: the bundle re-predicts its own training data (data.json) and matches the run's
  test predictions (max |dp| <= ``parity_tolerance``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from factory.config import build
from factory.dataset import PROBA_COLUMNS
from factory.features.registry import catalog


def _check(name: str, ok: bool, value, limit, detail: str = "") -> dict:
    return {"check": name, "passed": bool(ok), "value": value, "limit": limit,
            "detail": detail}


def run_gate(bundle, max_class_share: float = 0.95, max_gap: float = 0.15,
             min_metrics: dict | None = None, parity_tolerance: float = 1e-9,
             parity: bool = True) -> list[dict]:
    """Every check's result (see the module docstring); the caller refuses on any failure."""
    results = []
    spec = bundle.features.spec
    groups = catalog()
    wanted = spec["groups"] if isinstance(spec.get("groups"), dict) else dict.fromkeys(groups)
    missing = sorted(set(wanted) - set(groups))
    results.append(_check("features", not missing and bundle.schema["columns"] == [
        "open", "high", "low", "close", "volume"], missing or "all present",
        "registry groups, OHLCV input", "feature groups unknown to this code" if missing else ""))
    test = pd.read_parquet(bundle.path / "predictions_test.parquet")
    shares = np.bincount(test[PROBA_COLUMNS].to_numpy().argmax(axis=1), minlength=3) / max(
        len(test), 1)
    results.append(_check("not_degenerate", shares.max() <= max_class_share,
                          [round(float(s), 4) for s in shares], max_class_share,
                          "share of test predictions won by each class (short, flat, long)"))
    metrics = bundle.metrics
    for key, floor in (min_metrics or {}).items():
        if floor is None:
            continue
        split, name = key.split(".")
        value = metrics.get(split, {}).get(name)
        results.append(_check(f"min:{key}", value is not None and value >= floor, value, floor))
    objective = str(bundle.manifest.get("objective", "val.f1_macro")).split(".")[1]
    val, tst = metrics["val"].get(objective), metrics["test"].get(objective)
    gap = abs(tst - val) / abs(val) if val not in (None, 0) and tst is not None else None
    results.append(_check("val_test_gap", gap is not None and gap <= max_gap,
                          None if gap is None else round(gap, 4), max_gap,
                          f"|test - val| / |val| of {objective}: val {val}, test {tst}"))
    if parity:
        barset = build(OmegaConf.create(bundle.data_config)).load()
        pred = bundle.predict(barset)
        both = test.merge(pred, on=["timestamp", "symbol"], suffixes=("", "_b"))
        diff = float(np.abs(both[PROBA_COLUMNS].to_numpy() - both[
            [f"{c}_b" for c in PROBA_COLUMNS]].to_numpy()).max()) if len(both) else np.inf
        results.append(_check("parity", len(both) == len(test) and diff <= parity_tolerance,
                              diff, parity_tolerance,
                              f"{len(both)} of {len(test)} test rows re-predicted"))
    return results
