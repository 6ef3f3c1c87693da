"""K-fold training: out-of-fold (OOF) predictions from models that never saw the row.

For each split of a purged splitter (:mod:`factory.splits`), a *fresh* copy of the predictor
(``predictor.clone()``: a new adapter and model) is fitted on the split's training rows only,
so every fitted transform (scaler, class weights) is fold-local, and the fold's test rows are
predicted. Early stopping needs
validation rows that are not the fold's test rows: the last ``val_fraction`` of each
symbol's fold-training rows (in time) serve, with rows whose labels reach into them purged
from the fit part. Combinatorial CV (CPCV) predicts each row in several splits; its
backtest paths are reassembled from the splits (:func:`path_frames`).

Phase-1 transforms fitted on the whole training block (HMM regimes, fracdiff order,
feature pruning, a barrier search) are *not* refitted per fold: they saw the Phase-1
training rows, which CV folds also test on. They never see validation or test rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from factory.dataset import PROBA_COLUMNS, Dataset
from factory.errors import FactoryError

log = logging.getLogger(__name__)


def inner_validation(meta: pd.DataFrame, rows: np.ndarray, fraction: float,
                     purge_bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training ``rows`` into (fit, early-stopping) parts: the last ``fraction`` of
    each symbol's rows in time, with fit rows whose labels end within ``purge_bars`` bars of
    that part removed."""
    if not 0 < fraction < 1:
        raise FactoryError(f"inner validation fraction must be in (0, 1), got {fraction}")
    rows = np.asarray(rows, np.int64)
    fit, stop = [], []
    sub = meta.iloc[rows]
    for _, idx in sub.groupby("symbol", sort=True).indices.items():
        r = rows[idx][np.argsort(sub["bar_idx"].to_numpy()[idx], kind="stable")]
        cut = int(np.floor(len(r) * (1 - fraction)))
        first_bar = meta["bar_idx"].to_numpy()[r[cut]] if cut < len(r) else np.inf
        head = r[:cut]
        keep = meta["exit_idx"].to_numpy()[head] < first_bar - purge_bars
        fit.append(head[keep])
        stop.append(r[cut:])
    fit_rows, stop_rows = np.sort(np.concatenate(fit)), np.sort(np.concatenate(stop))
    if len(fit_rows) == 0 or len(stop_rows) == 0:
        raise FactoryError("a CV fold has too few training rows for an early-stopping part; "
                           "use fewer cv splits or more data")
    return fit_rows, stop_rows


@dataclass
class CVResult:
    """Out-of-fold predictions of one predictor over a splitter's folds."""

    oof: pd.DataFrame        # prediction frame of every split's test rows + `split`, `row`
    folds: pd.DataFrame      # one row per split: sizes, purge counts, metrics, seconds
    seconds: float
    metrics: dict | None = None      # the run's `cv` block (run_cross_validation)
    paths: pd.DataFrame | None = None  # CPCV: Sharpe of each reassembled backtest path
    returns: pd.Series | None = None   # per-bar returns of the OOF backtest (PBO / DSR)


def cross_validate(predictor, ds: Dataset, splitter, evaluate: Callable[[pd.DataFrame], dict],
                   val_fraction: float, desc: str = "cv") -> CVResult:
    """Fit a fresh ``predictor.clone()`` per split, predict its test rows; ``evaluate(pred)
    -> metrics`` per split."""
    started = time.perf_counter()
    frames, rows_out = [], []
    splits = list(splitter.split(ds.meta))
    report = splitter.report().to_dict("records")
    purge = int(getattr(splitter, "purge_bars", 0))
    for i, (train_idx, test_idx) in enumerate(tqdm(splits, desc=desc, unit="split",
                                                    leave=False)):
        t0 = time.perf_counter()
        fit_rows, stop_rows = inner_validation(ds.meta, train_idx, val_fraction, purge)
        fold = predictor.clone().fit(ds, fit_rows, stop_rows)
        pred = fold.predict(ds, test_idx)
        pred["row"] = _rows_of(ds, pred)
        pred["split"] = i
        metrics = evaluate(pred)
        info = {k: v for k, v in report[i].items() if k != "test_groups"}
        rows_out.append({**info, "n_fit": len(fit_rows), "n_early_stop": len(stop_rows),
                         "n_predicted": len(pred), **metrics,
                         "seconds": time.perf_counter() - t0})
        frames.append(pred)
        log.info("%s split %d/%d: n_train %d (fit %d + early stop %d), test %d, f1 %.4f", desc,
                 i + 1, len(splits), info.get("n_train", len(train_idx)), len(fit_rows),
                 len(stop_rows), len(pred), metrics.get("f1_macro", float("nan")))
    return CVResult(pd.concat(frames, ignore_index=True), pd.DataFrame(rows_out),
                    time.perf_counter() - started)


def _rows_of(ds: Dataset, pred: pd.DataFrame) -> np.ndarray:
    """Dataset row position of each prediction (symbol, bar_idx are unique per row)."""
    index = pd.MultiIndex.from_arrays([ds.meta["symbol"], ds.meta["bar_idx"]])
    return index.get_indexer(pd.MultiIndex.from_arrays([pred["symbol"], pred["bar_idx"]]))


def oof_mean(oof: pd.DataFrame) -> pd.DataFrame:
    """One prediction per row: rows predicted by several splits (CPCV) are averaged."""
    if not oof["row"].duplicated().any():
        return oof.sort_values("row").reset_index(drop=True)
    first = oof.drop_duplicates("row").set_index("row").drop(columns=PROBA_COLUMNS + ["split"])
    mean = oof.groupby("row")[PROBA_COLUMNS].mean()
    out = first.join(mean).reset_index().sort_values("row").reset_index(drop=True)
    return out[[c for c in oof.columns if c != "split"]]


def path_frames(oof: pd.DataFrame, splitter, ds: Dataset) -> list[pd.DataFrame]:
    """CPCV backtest paths: path j takes group g's predictions from split ``paths()[j, g]``."""
    group = splitter.groups(ds.meta)[oof["row"].to_numpy()]
    out = []
    for row in splitter.paths():
        pick = np.zeros(len(oof), bool)
        for g, s in enumerate(row):
            pick |= (group == g) & (oof["split"].to_numpy() == s)
        out.append(oof[pick].sort_values("row").reset_index(drop=True))
    return out


def returns_of(equity: pd.Series) -> pd.Series:
    """Per-bar portfolio returns from an equity curve (for PBO / deflated Sharpe)."""
    return equity.pct_change().fillna(0.0).rename("ret")


def val_fraction_of(splitter) -> float:
    """Share of each fold's training rows kept for early stopping: the holdout's val / (train +
    val), so folds early-stop on as much (relative) data as the holdout run does."""
    return float(splitter.val) / float(splitter.train + splitter.val)


def run_cross_validation(predictor, ds: Dataset, splitter, evaluator) -> CVResult:
    """The splitter's folds for ``predictor``: OOF frame (one prediction per row), per-fold
    table, the run's ``cv`` metrics block and, for CPCV, the Sharpe of every backtest path."""
    res = cross_validate(predictor, ds, splitter, lambda pred: evaluator.evaluate(pred, ds)[0],
                         val_fraction_of(splitter), desc=f"cv {type(splitter).__name__}")
    oof = oof_mean(res.oof)
    oof_metrics, oof_bt = evaluator.evaluate(oof, ds)
    numeric = res.folds.select_dtypes("number")
    cv = {"splitter": type(splitter).__name__, "n_splits": len(res.folds),
          "n_oof_rows": len(oof), "oof": oof_metrics,
          "folds_mean": numeric.mean().to_dict(), "folds_std": numeric.std().to_dict(),
          "seconds": res.seconds}
    paths = None
    if hasattr(splitter, "paths"):
        sharpe = [evaluator.evaluate(p, ds)[0]["sharpe"] for p in path_frames(res.oof, splitter,
                                                                              ds)]
        paths = pd.DataFrame({"path": range(len(sharpe)), "sharpe": sharpe})
        clean = [s for s in sharpe if s is not None and np.isfinite(s)]
        cv["paths"] = {"n": len(sharpe), "sharpe": sharpe,
                       "sharpe_mean": float(np.mean(clean)) if clean else None,
                       "sharpe_std": float(np.std(clean)) if clean else None}
    log.info("cv %s: %d splits, OOF f1 %.4f, sharpe %s (%.1fs)", cv["splitter"], cv["n_splits"],
             oof_metrics["f1_macro"], oof_metrics.get("sharpe"), res.seconds)
    return CVResult(oof, res.folds, res.seconds, cv, paths, returns_of(oof_bt.equity))


def is_kfold(splitter) -> bool:
    """Whether a ``cv`` splitter yields folds (k-fold, walk-forward, CPCV) or is the holdout."""
    return hasattr(splitter, "split")
