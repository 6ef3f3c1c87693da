"""K-fold training: out-of-fold (OOF) predictions from models that never saw the row.

For each split of a purged splitter (:mod:`factory.splits`), a *fresh* adapter and model
are fitted on the split's training rows only, so every fitted transform (scaler, class
weights) is fold-local, and the fold's test rows are predicted. Early stopping needs
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

from factory.adapters.base import check_compatible
from factory.config import build
from factory.dataset import Dataset
from factory.errors import FactoryError
from factory.training.trainer import predict_frame

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
    oof: pd.DataFrame        # prediction frame of every split's test rows + `split`, `row`
    folds: pd.DataFrame      # one row per split: sizes, purge counts, metrics, seconds
    seconds: float


def cross_validate(make_model: Callable, make_adapter: Callable, ds: Dataset, splitter,
                   evaluate: Callable[[pd.DataFrame], dict], val_fraction: float,
                   desc: str = "cv") -> CVResult:
    """Fit per split, predict its test rows; ``evaluate(pred) -> metrics`` per split."""
    started = time.perf_counter()
    frames, rows_out = [], []
    splits = list(splitter.split(ds.meta))
    report = splitter.report().to_dict("records")
    purge = int(getattr(splitter, "purge_bars", 0))
    for i, (train_idx, test_idx) in enumerate(tqdm(splits, desc=desc, unit="split",
                                                    leave=False)):
        t0 = time.perf_counter()
        model, adapter = make_model(), make_adapter()
        check_compatible(adapter.kind, model)
        fit_rows, stop_rows = inner_validation(ds.meta, train_idx, val_fraction, purge)
        adapter.fit(ds, fit_rows, model)
        model.fit(adapter.transform(ds, fit_rows), adapter.transform(ds, stop_rows))
        pred = predict_frame(model, adapter, ds, test_idx)
        pred["row"] = _rows_of(ds, pred)
        pred["split"] = i
        metrics = evaluate(pred)
        info = {k: v for k, v in report[i].items() if k != "test_groups"}
        rows_out.append({**info, "n_predicted": len(pred), **metrics,
                         "seconds": time.perf_counter() - t0})
        frames.append(pred)
        log.info("%s split %d/%d: train %d, test %d, f1 %.4f", desc, i + 1, len(splits),
                 len(fit_rows), len(pred), metrics.get("f1_macro", float("nan")))
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
    proba = ["p_short", "p_flat", "p_long"]
    first = oof.drop_duplicates("row").set_index("row").drop(columns=proba + ["split"])
    mean = oof.groupby("row")[proba].mean()
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


def run_cross_validation(cfg, ds: Dataset, evaluator, out_dir) -> tuple[dict, pd.DataFrame]:
    """The ``cv`` splitter's folds for ``cfg.model``: writes ``folds.csv``,
    ``predictions/oof.parquet`` (+ CPCV ``paths.csv``) and returns (cv metrics, OOF frame)."""
    splitter = build(cfg.cv)
    val_fraction = float(cfg.cv.val) / float(cfg.cv.train + cfg.cv.val)
    res = cross_validate(lambda: build(cfg.model), lambda: build(cfg.adapter), ds, splitter,
                         lambda pred: evaluator.evaluate(pred, ds)[0], val_fraction,
                         desc=f"cv {type(splitter).__name__}")
    oof = oof_mean(res.oof)
    oof_metrics, oof_bt = evaluator.evaluate(oof, ds)
    res.folds.to_csv(out_dir / "folds.csv", index=False)
    oof.to_parquet(out_dir / "predictions" / "oof.parquet", index=False)
    returns_of(oof_bt.equity).to_frame().to_parquet(out_dir / "predictions" /
                                                    "oof_returns.parquet")
    numeric = res.folds.select_dtypes("number")
    cv = {"splitter": type(splitter).__name__, "n_splits": len(res.folds),
          "n_oof_rows": len(oof), "oof": oof_metrics,
          "folds_mean": numeric.mean().to_dict(), "folds_std": numeric.std().to_dict(),
          "seconds": res.seconds}
    if hasattr(splitter, "paths"):
        sharpe = [evaluator.evaluate(p, ds)[0]["sharpe"] for p in path_frames(res.oof, splitter,
                                                                              ds)]
        pd.DataFrame({"path": range(len(sharpe)), "sharpe": sharpe}).to_csv(
            out_dir / "paths.csv", index=False)
        clean = [s for s in sharpe if s is not None and np.isfinite(s)]
        cv["paths"] = {"n": len(sharpe), "sharpe": sharpe,
                       "sharpe_mean": float(np.mean(clean)) if clean else None,
                       "sharpe_std": float(np.std(clean)) if clean else None}
    log.info("cv %s: %d splits, OOF f1 %.4f, sharpe %s (%.1fs)", cv["splitter"], cv["n_splits"],
             oof_metrics["f1_macro"], oof_metrics.get("sharpe"), res.seconds)
    return cv, oof
