"""Streaming: a bundle's predictions one new bar at a time, equal to the batch predictions.

A :class:`Streamer` serves one symbol (a live loop keeps one per symbol)::

    streamer = Streamer(bundle, "MES")
    streamer.warm_up(history)          # a DataFrame of past bars (open time index, OHLCV)
    for bar in feed:                   # each new closed bar, in time order
        prediction = streamer.update(bar)   # {timestamp, symbol, p_short, ..., version}

Two halves:

* **Features** (:class:`FeatureStream`): the selected feature columns of the newest bar. The
  reference implementation, :class:`WindowFeatureStream`, recomputes the bundle's features
  over a bounded trailing window of bars (``window``, long enough for every feature to
  converge: the longest rolling window, plus the smoothing transient of the recursive ones)
  and keeps the last row: one definition of every feature, never the whole history.
* **Model**: the last rows of features (as many as the adapter's window needs), the last bars
  (for multi-resolution and price-context inputs) and the predictor's own batch code on that
  small dataset: the same adapter and model code as batch prediction, on O(window) data.

``update`` refuses a bar that is not newer than the last one, has a non-finite or negative
value, or breaks high >= max(open, close) >= min(open, close) >= low, and leaves the state
untouched when it does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping

import numpy as np
import pandas as pd

from factory.bundle.features import FeatureState
from factory.data.bars import BarSet
from factory.errors import FactoryError

OHLCV = ("open", "high", "low", "close", "volume")


def as_bar_frame(bar, symbol: str) -> pd.DataFrame:
    """One bar (a mapping with ``timestamp`` and OHLCV, or a one-row frame) as a checked frame."""
    if isinstance(bar, pd.DataFrame):
        frame = bar
    else:
        if not isinstance(bar, Mapping) and hasattr(bar, "to_dict"):
            bar = {"timestamp": bar.name, **bar.to_dict()}
        missing = [k for k in ("timestamp", *OHLCV) if k not in bar]
        if missing:
            raise FactoryError(f"bar for {symbol}: missing field(s) {missing}; send timestamp, "
                               f"open, high, low, close, volume")
        ts = pd.Timestamp(bar["timestamp"])
        if ts.tzinfo is None:
            raise FactoryError(f"bar for {symbol}: timestamp {bar['timestamp']!r} has no "
                               f"timezone; send UTC (e.g. '2024-05-02T14:35:00Z')")
        try:
            values = {k: float(bar[k]) for k in OHLCV}
        except (TypeError, ValueError) as exc:
            raise FactoryError(f"bar for {symbol}: a price or volume is not a number "
                               f"({exc}); send numbers") from None
        frame = pd.DataFrame(values, index=pd.DatetimeIndex([ts.tz_convert("UTC")],
                                                            name="timestamp"))
    values = frame[list(OHLCV)].to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise FactoryError(f"bar for {symbol} at {frame.index[0]}: non-finite value; send "
                           f"finite prices and volume")
    o, h, lo, c, v = values.T
    if (v < 0).any() or (np.minimum(o, c) < lo).any() or (np.maximum(o, c) > h).any() or (
            lo <= 0).any():
        got = dict(zip(OHLCV, values[0].tolist(), strict=True))
        raise FactoryError(f"bar for {symbol} at {frame.index[0]}: need low <= open, close <= "
                           f"high, prices > 0 and volume >= 0; got {got}")
    return frame[list(OHLCV)].astype(np.float64)


class WindowFeatureStream:
    """Features of the newest bar from a bounded trailing window of bars (see module doc)."""

    def __init__(self, state: FeatureState, symbol: str, window: int) -> None:
        self.state, self.symbol, self.window = state, symbol, int(window)
        self.bars: pd.DataFrame | None = None

    def warm_up(self, history: pd.DataFrame) -> pd.DataFrame:
        """Feature rows of the history (all of it, in one batch pass)."""
        self.bars = history.iloc[-self.window:]
        return self.state.frame(self.symbol, history)

    def update(self, bar: pd.DataFrame) -> np.ndarray:
        self.bars = pd.concat([self.bars, bar]).iloc[-self.window:]
        return self.state.frame(self.symbol, self.bars).to_numpy(np.float32)[-1]


class Streamer:
    """One symbol's live predictions from a bundle (see the module docstring).

    ``keep``: rows of features and bars kept for the model side (the adapter's window and
    history needs; default: enough for any shipped adapter). ``feature_window``: the
    trailing bars the reference feature stream recomputes over.
    """

    def __init__(self, bundle, symbol: str, keep: int = 1200,
                 feature_window: int = 3000, feature_stream=None) -> None:
        if symbol not in bundle.schema["symbols"]:
            raise FactoryError(f"symbol {symbol!r} is not in the bundle (trained on "
                               f"{bundle.schema['symbols']})")
        self.bundle, self.symbol, self.keep = bundle, symbol, int(keep)
        states = {"": bundle.features, **bundle.base_features}
        self.streams = {name: (feature_stream(state, symbol) if feature_stream else
                               WindowFeatureStream(state, symbol, feature_window))
                        for name, state in states.items()}
        self.rows: dict[str, deque] = {}
        self.bars: pd.DataFrame | None = None
        self.timings: list[tuple[float, float]] = []

    @property
    def warm(self) -> bool:
        return self.bars is not None and len(self.bars) > self.bundle.warmup()

    def needed(self) -> int:
        """Bars still needed before predictions start."""
        have = 0 if self.bars is None else len(self.bars)
        return max(self.bundle.warmup() + 1 - have, 0)

    def warm_up(self, history: pd.DataFrame) -> None:
        """Feed the past bars (checked, in time order) before live updates start."""
        history = history[list(OHLCV)].astype(np.float64)
        if not history.index.is_monotonic_increasing or history.index.has_duplicates:
            raise FactoryError(f"warm-up history of {self.symbol}: timestamps must be strictly "
                               f"increasing (sort and de-duplicate the bars)")
        self.bars = history.iloc[-self.keep:]
        for name, stream in self.streams.items():
            frame = stream.warm_up(history)
            self.rows[name] = deque(frame.to_numpy(np.float32)[-self.keep:], maxlen=self.keep)

    def update(self, bar) -> dict:
        """The prediction for a new bar (refused, with the state untouched, when invalid)."""
        frame = as_bar_frame(bar, self.symbol)
        if self.bars is not None and len(self.bars) and frame.index[0] <= self.bars.index[-1]:
            raise FactoryError(f"bar for {self.symbol} at {frame.index[0]} is not after the "
                               f"last one ({self.bars.index[-1]}); send bars in time order, "
                               f"once each")
        if self.bars is None:
            self.warm_up(frame)
            return self._not_ready(frame.index[0])
        t0 = time.perf_counter()
        rows = {name: stream.update(frame) for name, stream in self.streams.items()}
        self.bars = pd.concat([self.bars, frame]).iloc[-self.keep:]
        for name, row in rows.items():
            self.rows[name].append(row)
        t1 = time.perf_counter()
        if not self.warm:
            return self._not_ready(frame.index[0])
        out = self._predict()
        self.timings.append((t1 - t0, time.perf_counter() - t1))
        return out

    def _not_ready(self, ts) -> dict:
        return {"timestamp": ts, "symbol": self.symbol, "ready": False, "needed": self.needed()}

    def _dataset(self, name: str, predictor):
        """A small dataset: the newest feature rows the predictor reads (a sequence window,
        else one) over the kept bars (multi-resolution and context inputs read bars)."""
        need = min(predictor.history_rows(), len(self.rows[name]), len(self.bars))
        rows = np.asarray([self.rows[name][-k] for k in range(need, 0, -1)])
        state = self.bundle.features if name == "" else self.bundle.base_features[name]
        barset = BarSet(bars={self.symbol: self.bars}, instruments=self.bundle.instruments,
                        timeframe=self.bundle.timeframe)
        return self.bundle.dataset_from_rows(barset, state, rows, self.symbol,
                                             predictor.needs_geometry)

    def _predict(self) -> dict:
        predictor = self.bundle.predictor
        ds = self._dataset("", predictor)
        if self.bundle.base_features:
            predictor.with_datasets({n: self._dataset(n, predictor.bases_[n].predictor)
                                     for n in self.bundle.base_features})
        frame = self.bundle.predictor.predict(ds, np.array([len(ds.meta) - 1]))
        if len(frame) == 0 or frame["timestamp"].iloc[-1] != self.bars.index[-1]:
            return self._not_ready(self.bars.index[-1])  # the adapter's window is not full
        out = frame.iloc[-1].to_dict()
        out.pop("bar_idx", None)
        out.update(ready=True, version=self.bundle.manifest.get("version"))
        return out
