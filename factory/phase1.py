"""Phase 1: bars -> features -> triple-barrier labels -> purged split -> weights.

Each symbol is processed in isolation (no feature, window or split crosses symbols). The
result is a :class:`factory.dataset.Dataset`, cached on disk under a hash of the data,
features, labeling and split configs.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from tqdm.auto import tqdm

from factory.cache import PHASE1_VERSION, Phase1Cache, config_hash
from factory.config import build
from factory.data.bars import BarSet
from factory.data.gaps import gap_report
from factory.dataset import Dataset
from factory.features.pipeline import FeaturePipeline
from factory.labeling.triple_barrier import TripleBarrierLabeler
from factory.labeling.weights import sample_weights
from factory.splits.holdout import SPLITS, HoldoutSplit, require_rows
from factory.splits.kfold import PurgedKFold

log = logging.getLogger(__name__)


def _symbol_frame(
    symbol: str, bars: pd.DataFrame, features: FeaturePipeline, labels: pd.DataFrame,
    base: pd.Timedelta, fine: pd.DataFrame | None = None, session_minutes: float = 1380.0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Features and meta rows of one symbol's labelled bars, plus its report."""
    feats = features.transform(bars, base, fine=fine)
    n = len(bars)
    warm = max(features.warmup_for(base), 0)
    position = np.arange(n)
    labelled = labels["exit_idx"].to_numpy() >= 0
    finite = np.isfinite(feats.to_numpy()).all(axis=1)
    # labeling.events=cusum: only sampled bars are rows (counted in the report)
    sampled = labels["event"].to_numpy() if "event" in labels else np.ones(n, bool)
    keep = (position >= warm) & labelled & finite & sampled
    nonfinite_after_warmup = int(((position >= warm) & labelled & sampled & ~finite).sum())
    if nonfinite_after_warmup:
        log.warning("%s: %d rows with non-finite features after warm-up excluded (see report)",
                    symbol, nonfinite_after_warmup)
    rows = np.flatnonzero(keep)
    lab = labels.iloc[rows]
    meta = pd.DataFrame({
        "timestamp": bars.index[rows],
        "symbol": symbol,
        "bar_idx": rows,
        "exit_idx": lab["exit_idx"].to_numpy(),
        "t1": bars.index[lab["exit_idx"].to_numpy()],
        "label": lab["label"].to_numpy(),
        "ret_long": lab["ret_long"].to_numpy(),
        "ret_short": lab["ret_short"].to_numpy(),
        "cost": lab["cost"].to_numpy(),
        "touch": lab["touch"].to_numpy(),
        "barrier_up": lab["barrier_up"].to_numpy(),
        "barrier_dn": lab["barrier_dn"].to_numpy(),
    })
    for column in [c for c in lab.columns if c.startswith("label_h") or c == "side"]:
        meta[column] = lab[column].to_numpy()  # other horizons; the meta-labels' primary side
    report = {
        "bars": n,
        "warmup_bars": warm,
        "unlabelled_tail": int((~labelled[warm:]).sum()),
        "nonfinite_after_warmup": nonfinite_after_warmup,
        "not_sampled": int(((position >= warm) & labelled & ~sampled).sum()),
        "rows": len(rows),
        "nan_share": {k: round(float(v), 6) for k, v in feats.isna().mean().items()},
        "gaps": gap_report(bars.index, base, break_minutes=1440.0 - session_minutes),
        "ladder_rungs_skipped": features.rungs(base, fine is not None)[1],
    }
    return feats.iloc[rows].reset_index(drop=True), meta, report


def _add_train_fitted(X: pd.DataFrame, meta: pd.DataFrame, barset: BarSet,
                      features: FeaturePipeline) -> tuple[pd.DataFrame, dict]:
    """Columns fitted on each symbol's training bars (bars up to its last training row)."""
    fitted = features.fitted
    if not fitted.columns:
        return X, {}
    extra = {name: np.full(len(X), np.nan, np.float32) for name in fitted.columns}
    state = {}
    for sym, rows in meta.groupby("symbol", sort=True).indices.items():
        bars = barset.bars[sym]
        bar_idx = meta["bar_idx"].to_numpy()[rows]
        train_end = bar_idx[meta["split"].to_numpy()[rows] == "train"].max()
        mask = np.arange(len(bars)) <= train_end
        columns, state[sym] = fitted.fit_transform(bars, mask)
        for name, values in columns.items():
            extra[name][rows] = values[bar_idx]
    return pd.concat([X, pd.DataFrame(extra, index=X.index)], axis=1), state


def _select_features(X: pd.DataFrame, meta: pd.DataFrame, features: FeaturePipeline,
                     split: HoldoutSplit) -> tuple[list[str], dict]:
    """``features.selection`` on purged k-fold splits of the training rows only."""
    train = np.flatnonzero(meta["split"].to_numpy() == "train")
    folds = PurgedKFold(features.selection.n_splits, split.purge_bars, split.embargo_bars,
                        train=1.0, val=0.0, test=0.0).split(meta.iloc[train])
    folds = [(train[a], train[b]) for a, b in folds]
    y = meta["label"].to_numpy().astype(np.int64) + (0 if "side" in meta else 1)
    return features.selection.select(X, y, meta["weight"].to_numpy(), folds)


def build_dataset(
    barset: BarSet, features: FeaturePipeline, labeler: TripleBarrierLabeler, split: HoldoutSplit
) -> Dataset:
    """Run Phase 1 on a loaded :class:`BarSet` (no caching)."""
    xs, metas, report = [], [], {}
    for sym in tqdm(barset.symbols, desc="phase 1", unit="symbol", leave=False):
        bars = barset.bars[sym]
        labels = labeler.label(bars, barset.instruments[sym])
        x, meta, report[sym] = _symbol_frame(sym, bars, features, labels, barset.timeframe,
                                             barset.fine.get(sym), barset.session_minutes)
        xs.append(x)
        metas.append(meta)
    X = pd.concat(xs, ignore_index=True) if len(xs) > 1 else xs[0]
    xs.clear()  # free the per-symbol frames before the next full-size step
    meta = pd.concat(metas, ignore_index=True)
    require_rows(report, split, labeler.horizon, barset, features.name)  # too short: say why
    meta["split"] = split.assign(meta)
    meta["weight"] = 0.0
    for (sym, name), rows in meta.groupby(["symbol", "split"]).indices.items():
        if name == "gap":
            continue
        meta.loc[rows, "weight"] = sample_weights(
            labeler.sample_weight,
            meta["bar_idx"].to_numpy()[rows] + 1,
            meta["exit_idx"].to_numpy()[rows],
            barset.bars[sym]["close"].to_numpy(),
            len(barset.bars[sym]),
            decay=labeler.time_decay,
        )
    X, fitted_state = _add_train_fitted(X, meta, barset, features)
    kept, dropped = features.select_columns(X, np.flatnonzero(meta["split"] == "train"))
    X = X[kept]
    if any(dropped.values()):
        log.info("features dropped on training rows: %s",
                 {k: len(v) for k, v in dropped.items() if v})
    selection = None
    if features.selection is not None:  # MDA inside purged folds of the training rows
        kept, selection = _select_features(X, meta, features, split)
        X = X[kept]
    for sym in barset.symbols:
        sub = meta[meta["symbol"] == sym]
        report[sym]["splits"] = sub["split"].value_counts().to_dict()
        report[sym]["labels"] = {
            s: sub.loc[sub["split"] == s, "label"].value_counts().sort_index().to_dict()
            for s in SPLITS
        }
        report[sym]["labels_by_horizon"] = {
            column: {s: sub.loc[sub["split"] == s, column].value_counts().sort_index().to_dict()
                     for s in SPLITS}
            for column in sub.columns if column.startswith("label_h")
        }
    info = {
        "horizon": labeler.horizon,
        "bars_per_year": barset.bars_per_year,
        "timeframe_minutes": barset.timeframe / pd.Timedelta(minutes=1),
        "feature_set": features.name,
        "warmup_bars": features.warmup_for(barset.timeframe),
        "report": {"symbols": report, "data": barset.report, "features_dropped": dropped,
                   "feature_warmups": features.warmups(), "features_kept": len(kept),
                   "selection": selection},
        "fitted": fitted_state,
    }
    for sym in barset.symbols:
        rep = report[sym]
        log.info("validation %s: %d bars, %d rows after warm-up %d, gaps %s, splits %s", sym,
                 rep["bars"], rep["rows"], rep["warmup_bars"],
                 {k: v for k, v in rep["gaps"].items() if k != "largest_intraday"},
                 rep["splits"])
    return Dataset(X=X, meta=meta, bars=barset.bars, instruments=barset.instruments, info=info)


def phase1_key(cfg: DictConfig) -> str:
    """Cache key: hash of the data, features, labeling and split (cv) configs.

    File sources add a hash of the file's contents, so editing a file in place invalidates
    its cached datasets.
    """
    source = build(cfg.data)
    content = source.fingerprint() if hasattr(source, "fingerprint") else None
    # only the holdout cut shapes the dataset: k-fold settings (n_splits, ...) do not, so a
    # `cv=purged_kfold` run shares the `cv=holdout` cache entry
    cut = {k: cfg.cv.get(k) for k in ("train", "val", "test", "purge_bars", "embargo_bars")}
    return config_hash(PHASE1_VERSION, cfg.data, cfg.features, cfg.labeling, cut, content)


def load_or_build(cfg: DictConfig) -> tuple[Dataset, str, bool]:
    """Phase-1 dataset for ``cfg``, from the cache when possible. Returns (dataset, key, hit)."""
    key = phase1_key(cfg)
    cache = Phase1Cache(cfg.paths.cache_dir) if cfg.get("cache", True) else None
    missing = cache is not None and not cache.exists(key)
    with cache.lock(key) if missing else nullcontext():  # one job builds, others wait, read
        return _load_or_build(cfg, key, cache)


def _load_or_build(cfg: DictConfig, key: str,
                   cache: Phase1Cache | None) -> tuple[Dataset, str, bool]:
    if cache is not None and cache.exists(key):
        t0 = time.perf_counter()
        ds = Dataset.load(cache.path(key))
        log.info("phase1 cache hit %s <rows=%d, seconds=%.2f>", key, len(ds.X),
                 time.perf_counter() - t0)
        return ds, key, True
    t0 = time.perf_counter()
    barset: BarSet = build(cfg.data).load()
    features: FeaturePipeline = build(cfg.features)
    labeler: TripleBarrierLabeler = build(cfg.labeling)
    split: HoldoutSplit = build(cfg.cv)
    ds = build_dataset(barset, features, labeler, split)
    ds.info["key"] = key
    log.info("phase1 computed %s <rows=%d, features=%d, seconds=%.2f>", key, len(ds.X),
             ds.X.shape[1], time.perf_counter() - t0)
    if cache is not None:
        cache.store(key, ds.save)
        log.info("phase1 cache stored %s", Path(cache.path(key)))
    return ds, key, False
