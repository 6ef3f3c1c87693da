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
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from factory.cache import PHASE1_VERSION, Phase1Cache, config_hash
from factory.config import build
from factory.data.bars import BarSet, Instrument
from factory.data.gaps import gap_report
from factory.dataset import Dataset
from factory.errors import FactoryError
from factory.features.fitted import prefetch_hmmlearn
from factory.features.matrix import ColumnMatrix, release_free_memory
from factory.features.pipeline import FeaturePipeline
from factory.labeling.triple_barrier import TripleBarrierLabeler
from factory.labeling.weights import sample_weights
from factory.splits.holdout import SPLITS, HoldoutSplit, require_rows
from factory.splits.kfold import PurgedKFold

log = logging.getLogger(__name__)

# Stages of ``info["timings"]`` in pipeline order (seconds; not part of the cached result's
# identity: the same config gives the same X/meta/report whatever these read).
STAGES = ("bars", "labels", "catalog", "ladder", "assemble", "split_weights", "hmm",
          "fracdiff", "selection", "report", "cache_write")


class Laps:
    """Wall seconds per stage: :meth:`lap` charges the time since the previous lap."""

    def __init__(self, seconds: dict[str, float] | None = None) -> None:
        self.seconds = {} if seconds is None else seconds
        self._last = time.perf_counter()

    def lap(self, stage: str | None) -> None:
        """Charge the time since the last lap to ``stage`` (None: nested code timed it)."""
        now = time.perf_counter()
        if stage is not None:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def summary(self) -> str:
        order = [s for s in STAGES if s in self.seconds]
        order += [s for s in self.seconds if s not in order]
        return ", ".join(f"{s} {self.seconds[s]:.2f}" for s in order)


def _symbol_rows(
    symbol: str, bars: pd.DataFrame, instrument: Instrument, features: FeaturePipeline,
    labeler: TripleBarrierLabeler, matrix: ColumnMatrix, start: int, base: pd.Timedelta,
    fine: pd.DataFrame | None = None, session_minutes: float = 1380.0, laps: Laps | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """One symbol: its features written to rows ``start:start+len(bars)`` of ``matrix``,
    then its labels; returns the positions (within its bars) of its labelled rows with
    finite features, their meta rows, and its report. (Labels come second so that the
    label columns the meta rows do not keep never coexist with the feature threads.)"""
    laps = Laps() if laps is None else laps
    nan, finite = features.fill(matrix, bars, base, fine=fine, start=start,
                                timings=laps.seconds)
    release_free_memory()  # the feature threads' temporaries
    laps.lap(None)
    labels = labeler.label(bars, instrument)
    laps.lap("labels")
    n = len(bars)
    warm = max(features.warmup_for(base), 0)
    position = np.arange(n)
    labelled = labels["exit_idx"].to_numpy() >= 0
    # labeling.events=cusum: only sampled bars are rows (counted in the report)
    sampled = labels["event"].to_numpy() if "event" in labels else np.ones(n, bool)
    keep = (position >= warm) & labelled & finite & sampled
    nonfinite_after_warmup = int(((position >= warm) & labelled & sampled & ~finite).sum())
    if nonfinite_after_warmup:
        log.warning("%s: %d rows with non-finite features after warm-up excluded (see report)",
                    symbol, nonfinite_after_warmup)
    rows = np.flatnonzero(keep)

    # meta-labels' primary side and the other horizons' labels ride along
    names = ["exit_idx", "label", "ret_long", "ret_short", "cost", "touch", "barrier_up",
             "barrier_dn", *(c for c in labels.columns if c.startswith("label_h") or c == "side")]
    lab = {c: labels[c].to_numpy()[rows] for c in names}
    del labels  # the label columns Phase 1 does not keep go now
    meta = pd.DataFrame({
        "timestamp": bars.index[rows],
        "symbol": symbol,
        "bar_idx": rows,
        "exit_idx": lab["exit_idx"],
        "t1": bars.index[lab["exit_idx"]],
        **lab,
    }, copy=False)  # fresh arrays already: no consolidating copy
    del lab
    report = {
        "bars": n,
        "warmup_bars": warm,
        "unlabelled_tail": int((~labelled[warm:]).sum()),
        "nonfinite_after_warmup": nonfinite_after_warmup,
        "not_sampled": int(((position >= warm) & labelled & ~sampled).sum()),
        "rows": len(rows),
        "nan_share": {k: round(v / n if n else float("nan"), 6) for k, v in nan.items()},
        "gaps": gap_report(bars.index, base, break_minutes=1440.0 - session_minutes),
        "ladder_rungs_skipped": features.rungs(base, fine is not None)[1],
    }
    laps.lap("assemble")
    return rows, meta, report


def _add_train_fitted(matrix: ColumnMatrix, meta: pd.DataFrame, barset: BarSet,
                      features: FeaturePipeline, laps: Laps) -> dict:
    """Columns fitted on each symbol's training bars (bars up to its last training row),
    appended to ``matrix`` (NaN where a symbol has none); returns the fitted states."""
    fitted = features.fitted
    if not fitted.columns:
        return {}
    clash = [c for c in fitted.columns if c in matrix]
    if clash:
        raise FactoryError(f"fitted feature column(s) {clash} (`features.fitted`) repeat "
                           "columns of `features.groups`")
    release_free_memory()  # before the fits' temporaries
    matrix.reserve(len(fitted.columns))
    for name in fitted.columns:
        matrix.set_rows(name, np.zeros(0, np.int64), np.zeros(0))
    state = {}
    for sym, rows in meta.groupby("symbol", sort=True).indices.items():
        bars = barset.bars[sym]
        bar_idx = meta["bar_idx"].to_numpy()[rows]
        train_end = bar_idx[meta["split"].to_numpy()[rows] == "train"].max()
        mask = np.arange(len(bars)) <= train_end
        laps.lap("assemble")
        columns, state[sym] = fitted.fit_transform(bars, mask, timings=laps.seconds)
        laps.lap(None)
        for name in fitted.columns:
            matrix.set_rows(name, rows, columns[name][bar_idx])
        del columns
        release_free_memory()
    laps.lap("assemble")
    return state


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
    barset: BarSet, features: FeaturePipeline, labeler: TripleBarrierLabeler, split: HoldoutSplit,
    laps: Laps | None = None,
) -> Dataset:
    """Run Phase 1 on a loaded :class:`BarSet` (no caching).

    ``X`` is built in one float32 buffer (:class:`ColumnMatrix`): every symbol's features
    are written to their rows of it, the labelled rows kept in place, the fitted columns
    appended and the selected columns kept in place, so the matrix is never copied.
    ``laps``: seconds per stage (:data:`STAGES`) are added to it; the dataset's
    ``info["timings"]`` holds them."""
    laps = Laps() if laps is None else laps
    symbols = barset.symbols
    starts = np.concatenate([[0], np.cumsum([len(barset.bars[s]) for s in symbols])])
    matrix = ColumnMatrix(int(starts[-1]))
    kept_rows, metas, report = [], [], {}
    for i, sym in enumerate(tqdm(symbols, desc="phase 1", unit="symbol", leave=False)):
        laps.lap(None)
        rows, meta, report[sym] = _symbol_rows(
            sym, barset.bars[sym], barset.instruments[sym], features, labeler, matrix,
            int(starts[i]), barset.timeframe, barset.fine.get(sym), barset.session_minutes, laps)
        kept_rows.append(rows + starts[i])
        metas.append(meta)
    matrix.keep_rows(np.concatenate(kept_rows))
    meta = metas[0] if len(metas) == 1 else pd.concat(metas, ignore_index=True)
    del metas
    laps.lap("assemble")
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
    laps.lap("split_weights")
    fitted_state = _add_train_fitted(matrix, meta, barset, features, laps)
    X = matrix.frame()
    kept, dropped = features.select_columns(X, np.flatnonzero(meta["split"] == "train"))
    if kept != matrix.names:
        del X  # the frame views the buffer: drop it so the columns move in place
        matrix.keep_columns(kept)
        X = matrix.frame()
    if any(dropped.values()):
        log.info("features dropped on training rows: %s",
                 {k: len(v) for k, v in dropped.items() if v})
    selection = None
    if features.selection is not None:  # MDA inside purged folds of the training rows
        kept, selection = _select_features(X, meta, features, split)
        if kept != matrix.names:  # a subsequence of the columns: in place as above
            del X
            matrix.keep_columns(kept)
            X = matrix.frame()
    laps.lap("selection")
    for sym in barset.symbols:
        sub = meta if len(barset.symbols) == 1 else meta[meta["symbol"] == sym]
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
        "timings": laps.seconds,
    }
    for sym in barset.symbols:
        rep = report[sym]
        log.info("validation %s: %d bars, %d rows after warm-up %d, gaps %s, splits %s", sym,
                 rep["bars"], rep["rows"], rep["warmup_bars"],
                 {k: v for k, v in rep["gaps"].items() if k != "largest_intraday"},
                 rep["splits"])
    laps.lap("report")
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
    laps = Laps()
    if OmegaConf.select(cfg, "features.fitted.hmm"):
        prefetch_hmmlearn()  # overlaps the data and features; only the fit needs it
    barset: BarSet = build(cfg.data).load()
    release_free_memory()  # the source's temporaries (parsing, generation, resampling)
    features: FeaturePipeline = build(cfg.features)
    labeler: TripleBarrierLabeler = build(cfg.labeling)
    split: HoldoutSplit = build(cfg.cv)
    laps.lap("bars")
    ds = build_dataset(barset, features, labeler, split, laps)
    ds.info["key"] = key
    log.info("phase1 computed %s <rows=%d, features=%d, seconds=%.2f>", key, len(ds.X),
             ds.X.shape[1], time.perf_counter() - t0)
    if cache is not None:
        laps.lap(None)
        cache.store(key, ds.save)
        laps.lap("cache_write")
        log.info("phase1 cache stored %s", Path(cache.path(key)))
    log.info("phase1 seconds per stage: %s", laps.summary())
    return ds, key, False
