"""Context adapter: each row's past closes, for zero-shot forecasters (``input_kind="context"``).

A foundation forecaster reads a price history, not the feature matrix: for a row decided
at bar t of a symbol, its context is that symbol's closes ``close[t - L + 1 .. t]``
(``L = context_len``), ending exactly at the decision bar and never later. Rows with less
history are left-padded with NaN (the forecasters mask missing values), so no row is dropped.

Windows may reach back before the split's first bar (a validation row's context can hold
training-period closes): they are past prices only, like any lookback feature, and a
zero-shot model learns nothing from them. The barrier geometry (``barrier_up``,
``barrier_dn``, and the round-trip cost as a return on the decision bar's close) and the
horizon travel with the input, since the model needs them to turn a return forecast into
class probabilities; all three are known at the decision, so new bars get the same numbers.

Nothing ``(n, L)`` is materialised: the input keeps one flat array of every symbol's closes
plus each row's end position, and :meth:`ContextInput.batch` gathers a batch of windows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from factory.dataset import Dataset
from factory.errors import FactoryError


def decision_cost(ds: Dataset, symbols: np.ndarray, bar_idx: np.ndarray) -> np.ndarray:
    """Round-trip cost as a return on each row's decision-bar close: known at the decision
    (the label's own cost divides by the next bar's open, which is not), so training and
    live prediction compute the same number."""
    points = np.array([ds.instruments[s].round_trip_cost_points for s in symbols], np.float64)
    close = np.empty(len(symbols))
    for sym in set(symbols.tolist()):
        at = symbols == sym
        close[at] = ds.bars[sym]["close"].to_numpy(np.float64)[bar_idx[at]]
    return points / close


@dataclass
class ContextInput:
    """Close-price windows for the rows ``rows`` of a dataset, gathered per batch.

    ``closes`` is every used symbol's close series back to back; ``first[i]``/``end[i]`` are
    the flat positions of row i's symbol start and of its decision bar t. ``y`` holds class
    indices (0..2), ``weight`` ones (a zero-shot model does not train on them).
    """

    closes: np.ndarray
    first: np.ndarray
    end: np.ndarray
    context_len: int
    barrier_up: np.ndarray
    barrier_dn: np.ndarray
    cost: np.ndarray
    horizon: int
    y: np.ndarray | None
    weight: np.ndarray | None
    rows: np.ndarray
    feature_names: list[str]

    def __len__(self) -> int:
        return len(self.end)

    def batch(self, positions: np.ndarray) -> np.ndarray:
        """``(len(positions), context_len)`` float64 closes ending at each row's bar t.

        Positions before the symbol's first bar are NaN (left padding).
        """
        positions = np.asarray(positions, np.int64)
        grid = self.end[positions, None] + np.arange(1 - self.context_len, 1)
        valid = grid >= self.first[positions, None]
        return np.where(valid, self.closes[np.maximum(grid, 0)], np.nan)

    def subset(self, keep: np.ndarray) -> ContextInput:
        """The samples selected by ``keep`` (boolean mask or positions); closes are shared."""
        return replace(self, first=self.first[keep], end=self.end[keep],
                       barrier_up=self.barrier_up[keep], barrier_dn=self.barrier_dn[keep],
                       cost=self.cost[keep], rows=self.rows[keep],
                       y=None if self.y is None else self.y[keep],
                       weight=None if self.weight is None else self.weight[keep])

    def permute_feature(self, j: int, rng: np.random.Generator) -> ContextInput:
        """A copy with the closes shuffled within each symbol (permutation importance: how
        much worse the forecaster does without the order of its price history)."""
        if j != 0:
            raise IndexError(f"context input has one feature ('close'), asked for {j}")
        closes = self.closes.copy()
        starts = np.unique(self.first)
        bounds = np.append(starts, len(closes))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):  # one loop step per symbol
            closes[lo:hi] = rng.permutation(closes[lo:hi])
        return replace(self, closes=closes)


class ContextAdapter(BaseEstimator):
    """Close-price windows (``conf/adapter/context.yaml``).

    Parameters
    ----------
    context_len: bars of history per row (the forecaster truncates to its own maximum).
    """

    kind = "context"

    def __init__(self, context_len: int = 512) -> None:
        if isinstance(context_len, bool) or not isinstance(context_len, int) or context_len < 2:
            raise FactoryError(f"`adapter.context_len` must be an int >= 2, got {context_len!r}")
        self.context_len = context_len

    def fit(self, ds: Dataset, rows: np.ndarray, model=None) -> ContextAdapter:
        """Nothing is learned from rows; checks the dataset can feed a forecaster."""
        if "side" in ds.meta:
            raise FactoryError(
                "zero-shot forecasters predict the triple-barrier outcome, not a meta-label: "
                "set `labeling.meta=null` to use `adapter=context`"
            )
        missing = {"barrier_up", "barrier_dn"} - set(ds.meta.columns)
        if missing:
            raise FactoryError(f"dataset meta lacks {sorted(missing)} (Phase-1 cache from an "
                               f"older version?): rerun with `cache=false` once")
        self.feature_names_ = ["close"]
        return self

    def transform(self, ds: Dataset, rows: np.ndarray) -> ContextInput:
        rows = np.asarray(rows, np.int64)
        meta = ds.meta
        symbols = meta["symbol"].to_numpy()[rows]
        used = sorted(set(symbols.tolist()))
        series = [ds.bars[s]["close"].to_numpy(np.float64) for s in used]
        for sym, close in zip(used, series, strict=True):
            if not (np.isfinite(close).all() and (close > 0).all()):
                raise FactoryError(f"bars of {sym}: closes must be finite and > 0 for "
                                   f"`adapter=context` (fix or drop the bad bars)")
        sizes = np.array([len(c) for c in series], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        first = offsets[pd.Index(used).get_indexer(symbols)] if len(rows) else rows
        geometry = meta[["barrier_up", "barrier_dn"]].to_numpy(np.float64)[rows]
        cost = decision_cost(ds, symbols, meta["bar_idx"].to_numpy(np.int64)[rows])
        geometry = np.column_stack([geometry, cost])
        if not np.isfinite(geometry).all():
            raise FactoryError("barrier_up/barrier_dn/cost must be finite on every row for "
                               "`adapter=context` (rows inside the ATR warm-up?)")
        return ContextInput(
            closes=np.concatenate(series) if series else np.zeros(0),
            first=first,
            end=first + meta["bar_idx"].to_numpy(np.int64)[rows],
            context_len=self.context_len,
            barrier_up=geometry[:, 0],
            barrier_dn=geometry[:, 1],
            cost=geometry[:, 2],
            horizon=ds.horizon,
            y=ds.label_index(rows),
            weight=np.ones(len(rows)),
            rows=rows,
            feature_names=["close"],
        )

    def state(self) -> dict:
        """The parameters (nothing is fitted), as JSON-able values."""
        return {"params": {"context_len": self.context_len}, "features": ["close"]}

    @classmethod
    def from_state(cls, state: dict) -> ContextAdapter:
        adapter = cls(**state["params"])
        adapter.feature_names_ = list(state["features"])
        return adapter
