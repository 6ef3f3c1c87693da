"""Per-symbol barrier multipliers chosen by an Optuna search on the training block only.

What is searched: ``(upper_mult, lower_mult)`` on a grid (``low`` .. ``high`` step ``step``),
with a seeded TPE sampler and ``n_trials`` trials, for one symbol at a time.

On which bars: the first ``B = floor(train_fraction * (n_bars - horizon))`` bars of the
symbol, and labels inside the block stop ``horizon`` bars before its end. Phase 1 cuts its
splits on *labelled rows*, which run from the warm-up ``w`` to ``n_bars - horizon``, so the
first validation bar is at ``>= w + floor(train_fraction * (n_bars - horizon - w)) >= B``:
no label of the search reads a validation or test bar (rows dropped for non-finite
features after the warm-up, reported by Phase 1, are the only thing that could pull that
cut earlier, by at most their number). Changing any bar after the block cannot change the
result (tests/test_barrier_search.py multiplies them by 10).

Objective (maximised): **balance of the -1 / 0 / +1 label distribution**, the Shannon
entropy of the class shares divided by log 3 (1 = a third each), and only when every class
holds at least ``min_class_share`` of the rows; otherwise the score is the (negative)
shortfall of the rarest class, so TPE is still pointed towards feasible geometry. Why this
and not a return objective: the barriers define the *target*, not the strategy. A balanced
target gives every class enough examples for the classifiers and makes the default sweep
metric (macro F1) meaningful, and it depends only on the barrier widths relative to the
training block's volatility and costs. Maximising the net return per unit risk of the
barrier geometry instead would tune the labels to the training period's drift (an in-sample
strategy backtest, the classic way to overfit) before any model has been fit, and a
validation-based objective would leak. The entropy objective uses no model and no
validation or test bar.

Results are cached as JSON in ``<cache_dir>/barriers/<key>.json``; the key hashes the
training block's contents (index and OHLC), the symbol's cost, the labeling settings that
shape labels (horizon, width unit, ATR period, volatility span, vertical mode), the search
settings and the train fraction. A second run with the same inputs reads the file instead of
searching.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.labeling.kernel import triple_barrier_fast
from factory.labeling.widths import unit_width
from factory.labeling.widths import warmup as width_warmup

log = logging.getLogger(__name__)

SEARCH_VERSION = 2  # bump when the objective or the block definition changes
DEFAULTS = {"n_trials": 30, "seed": 0, "min_class_share": 0.1, "low": 0.5, "high": 3.0,
            "step": 0.05}


def check_optimize(optimize: Mapping | None) -> dict | None:
    """Validated ``labeling.optimize`` settings with defaults filled in (None = off)."""
    if optimize is None:
        return None
    spec = dict(optimize)
    extra = sorted(set(spec) - set(DEFAULTS))
    if extra:
        raise FactoryError(f"`labeling.optimize` has unknown keys {extra}; allowed: "
                           f"{', '.join(DEFAULTS)} (or `labeling.optimize=null`)")
    out = {**DEFAULTS, **spec}
    n_trials, seed = out["n_trials"], out["seed"]
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials <= 0:
        raise FactoryError(f"`labeling.optimize.n_trials` must be a positive int, got "
                           f"{n_trials!r} (try `labeling.optimize.n_trials=30`)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FactoryError(f"`labeling.optimize.seed` must be an int, got {seed!r}")
    if not 0.0 <= out["min_class_share"] <= 1.0 / 3.0:
        raise FactoryError(f"`labeling.optimize.min_class_share` must be in [0, 1/3], got "
                           f"{out['min_class_share']!r} (try 0.1)")
    if not 0.0 < out["low"] < out["high"] or not out["step"] > 0:
        raise FactoryError("`labeling.optimize.low/high/step` must satisfy 0 < low < high and "
                           f"step > 0, got {out['low']}/{out['high']}/{out['step']}")
    return out


def training_bars(n_bars: int, train_fraction: float, horizon: int) -> int:
    """How many leading bars of a symbol the search may read (see the module docstring)."""
    if not 0.0 < train_fraction < 1.0:
        raise FactoryError(f"`labeling.train_fraction` must be in (0, 1), got "
                           f"{train_fraction!r} (wire it to `${{cv.train}}`)")
    return int(np.floor(train_fraction * max(n_bars - horizon, 0)))


def fingerprint(bars: pd.DataFrame) -> str:
    """Hash of the bars' timestamps and OHLC values."""
    h = hashlib.sha256(np.asarray(bars.index.asi8 if hasattr(bars.index, "asi8")
                                  else np.arange(len(bars)), np.int64).tobytes())
    for col in ("open", "high", "low", "close"):
        h.update(np.ascontiguousarray(bars[col].to_numpy(np.float64)).tobytes())
    return h.hexdigest()[:16]


def label_balance(labels: np.ndarray, min_class_share: float) -> tuple[float, list[float]]:
    """(score, shares of -1 / 0 / +1): normalised entropy, or the rarest class's shortfall."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return -1.0, [0.0, 0.0, 0.0]
    shares = np.array([(labels == k).mean() for k in (-1, 0, 1)])
    if shares.min() < min_class_share:
        return float(shares.min() - min_class_share), shares.tolist()
    nz = shares[shares > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(3.0)), shares.tolist()


def search_barriers(
    bars: pd.DataFrame,
    *,
    symbol: str,
    horizon: int,
    atr_period: int,
    cost_points: float,
    vertical: str,
    train_fraction: float,
    settings: Mapping,
    cache_dir: str | Path | None = None,
    width: str = "atr",
    vol_span: int = 50,
) -> dict:
    """Best ``upper_mult`` / ``lower_mult`` for one symbol; reads or writes the JSON cache.

    The multipliers scale the width unit ``width`` (:mod:`factory.labeling.widths`).
    """
    n_block = training_bars(len(bars), train_fraction, horizon)
    warm = width_warmup(width, atr_period, vol_span)
    if n_block < warm + horizon + 100:
        raise FactoryError(
            f"barrier search for {symbol}: only {n_block} training bars; need at least "
            f"{warm + horizon + 100} (more data, or `labeling.optimize=null`)")
    block = bars.iloc[:n_block]
    key_parts = {"version": SEARCH_VERSION, "bars": fingerprint(block), "symbol": symbol,
                 "horizon": horizon, "width": width, "atr_period": atr_period,
                 "vol_span": vol_span, "cost_points": cost_points,
                 "vertical": vertical, "train_fraction": train_fraction,
                 "settings": dict(settings)}
    blob = json.dumps(key_parts, sort_keys=True, default=str).encode()
    key = hashlib.sha256(blob).hexdigest()[:16]
    path = Path(cache_dir) / "barriers" / f"{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        result = json.loads(path.read_text())
        log.info("barrier search cache hit %s: %s upper %.2f lower %.2f", key, symbol,
                 result["upper_mult"], result["lower_mult"])
        return {**result, "from_cache": True}

    o, h, lo, c = (block[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    unit = unit_width(o, h, lo, c, width, horizon, atr_period, vol_span)
    usable = ~np.isnan(unit)
    s = settings

    def objective(trial) -> float:
        um = trial.suggest_float("upper_mult", s["low"], s["high"], step=s["step"])
        lm = trial.suggest_float("lower_mult", s["low"], s["high"], step=s["step"])
        res = triple_barrier_fast(o, h, lo, c, um * unit, lm * unit, horizon, cost_points,
                                  vertical)
        score, shares = label_balance(res["label"][usable & (res["exit_idx"] >= 0)],
                                      s["min_class_share"])
        trial.set_user_attr("shares", shares)
        return score

    import optuna  # heavy import, only when a search actually runs

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=s["seed"]))
        study.optimize(objective, n_trials=s["n_trials"])
    finally:
        optuna.logging.set_verbosity(verbosity)
    best = study.best_trial
    result = {"symbol": symbol, "upper_mult": round(best.params["upper_mult"], 9),
              "lower_mult": round(best.params["lower_mult"], 9), "score": best.value,
              "shares_down_flat_up": best.user_attrs["shares"], "training_bars": n_block,
              "objective": "label-balance entropy", "key": key, **key_parts}
    log.info("barrier search %s: upper %.2f lower %.2f (balance %.3f, shares %s) on %d "
             "training bars", symbol, result["upper_mult"], result["lower_mult"], best.value,
             np.round(result["shares_down_flat_up"], 3).tolist(), n_block)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
        os.replace(tmp, path)  # atomic: parallel jobs never read half a file
    return {**result, "from_cache": False}
