"""Decisions for the simulator from a bundle, over one segment of bars: streamed bar by bar
through the bundle's :class:`~factory.bundle.stream.Streamer` (the code that would trade
live) or predicted in one batch (``Bundle.dataset`` + the predictor, equal to streaming:
tests/test_bundle.py, tests/test_simulate_task.py).

Each decision carries what the engine and the prediction log need besides the class
probabilities: the label's geometry at the decision bar (barrier widths in price points,
from the bundle's labeler: causal, known at the bar), the primary side under meta-labels,
and the model's input row (for drift monitoring).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from factory.bundle.reader import Bundle
from factory.bundle.stream import Streamer
from factory.data.bars import BarSet
from factory.dataset import PROBA_COLUMNS
from factory.labeling.meta import primary_side

log = logging.getLogger(__name__)


def model_tag(bundle: Bundle) -> str:
    """The name a bundle's predictions are logged under: its name and the first 12 hex of its
    manifest's SHA-256 (every file's hash is in the manifest, so any refit differs)."""
    digest = hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest()
    return f"{bundle.name}@{digest[:12]}"


@dataclass
class Replayed:
    """One segment's decisions: ``pred`` (timestamp, symbol, p_short/p_flat/p_long, the
    widths in points, ``side`` under meta-labels), ``features`` (the model's input rows, in
    ``pred``'s order), bars fed through the predictor and the seconds it took."""

    pred: pd.DataFrame
    features: pd.DataFrame
    bars: int
    seconds: float


def _bounds(index: pd.DatetimeIndex, start, end) -> tuple[int, int]:
    i0 = 0 if start is None else int(index.searchsorted(start, side="left"))
    i1 = len(index) if end is None else int(index.searchsorted(end, side="left"))
    return i0, i1


def _geometry(bundle: Bundle, sym: str, bars: pd.DataFrame, pos: np.ndarray) -> dict:
    """Widths in points (and the primary side under meta-labels) at the bars ``pos``; the
    labeler's own geometry function, causal (computed on bars up to the segment's end)."""
    mults = bundle.labeling["multipliers"].get(sym) or bundle.labeler.multipliers(sym)
    up, dn = bundle.labeler.geometry(bars, tuple(mults))
    close = bars["close"].to_numpy(np.float64)
    out = {"width_up": (up * close)[pos], "width_dn": (dn * close)[pos]}
    meta = bundle.labeling["config"].get("meta")
    if meta:
        out["side"] = primary_side(close, meta)[pos]
    return out


def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["timestamp", "symbol", *PROBA_COLUMNS, "width_up", "width_dn"])


def stream(bundle: Bundle, barset: BarSet, start=None, end=None, progress: bool = True
           ) -> Replayed:
    """Every bar of ``[start, end)`` fed alone to a streamer warmed up on the bars before."""
    preds, feats, fed, t0 = [], [], 0, time.perf_counter()
    columns = bundle.features.columns
    for sym in barset.symbols:
        bars = barset.bars[sym]
        i0, i1 = _bounds(bars.index, start, end)
        first = max(i0, bundle.warmup() + 1)
        if first >= i1:
            continue
        streamer = Streamer(bundle, sym)
        streamer.warm_up(bars.iloc[:first])
        rows, inputs = [], []
        for i in tqdm(range(first, i1), desc=f"stream {sym}", unit="bar", leave=False,
                      disable=not progress, mininterval=2.0):
            out = streamer.update(bars.iloc[[i]])
            if out.get("ready"):
                rows.append({**out, "bar_idx": i})
                inputs.append(latest_inputs(streamer))
        fed += i1 - first
        if not rows:
            continue
        frame = pd.DataFrame(rows).drop(columns=["ready", "version"], errors="ignore")
        pos = frame.pop("bar_idx").to_numpy()
        preds.append(frame.assign(**_geometry(bundle, sym, bars.iloc[:i1], pos)))
        feats.append(pd.DataFrame(np.asarray(inputs, np.float32), columns=columns))
    return Replayed(_frame(preds), _frame(feats) if feats else pd.DataFrame(columns=columns),
                    fed, time.perf_counter() - t0)


def latest_inputs(streamer: Streamer) -> np.ndarray:
    """The feature row the streamer's last prediction read (its newest kept row)."""
    return np.asarray(streamer.rows[""].last(1)[0], np.float32)


def batch(bundle: Bundle, barset: BarSet, start=None, end=None) -> Replayed:
    """The bundle's batch prediction of the bars before ``end``, kept from ``start`` on."""
    t0 = time.perf_counter()
    cut, first = {}, {}
    for sym in barset.symbols:
        i0, i1 = _bounds(barset.bars[sym].index, start, end)
        cut[sym], first[sym] = barset.bars[sym].iloc[:i1], i0
    fine = {s: f if end is None else f.loc[f.index < end] for s, f in barset.fine.items()}
    view = replace(barset, bars=cut, fine=fine)
    ds = bundle.dataset(view)
    if bundle.base_features:
        bundle.predictor.with_datasets({n: bundle.dataset(view, s)
                                        for n, s in bundle.base_features.items()})
    meta = ds.meta
    keep = meta["bar_idx"].to_numpy() >= meta["symbol"].map(first).to_numpy()
    frame = bundle.predictor.predict(ds, np.flatnonzero(keep))
    frame = frame.sort_values("symbol", kind="stable").reset_index(drop=True)
    keys = pd.MultiIndex.from_arrays([meta["symbol"], meta["bar_idx"]])
    at = keys.get_indexer(pd.MultiIndex.from_arrays([frame["symbol"], frame["bar_idx"]]))
    features = ds.X.iloc[at].reset_index(drop=True)
    preds = []
    for sym, sub in frame.groupby("symbol", sort=True):
        pos = sub["bar_idx"].to_numpy()
        preds.append(sub.drop(columns=["bar_idx"]).assign(
            **_geometry(bundle, str(sym), cut[str(sym)], pos)))
    pred = _frame(preds)
    fed = sum(len(b) - first[s] for s, b in cut.items() if len(b) > first[s])
    return Replayed(pred, features, fed, time.perf_counter() - t0)
