"""Streaming: a bundle's predictions one new bar at a time, equal to the batch predictions.

A :class:`Streamer` serves one symbol (a live loop keeps one per symbol)::

    streamer = Streamer(bundle, "MES")
    streamer.warm_up(history)          # a DataFrame of past bars (open time index, OHLCV)
    for bar in feed:                   # each new closed bar, in time order
        prediction = streamer.update(bar)   # {timestamp, symbol, p_short, ..., version}

Two halves (docs/streaming.md):

* **Features**: :class:`IncrementalFeatureStream` keeps per-group state
  (:mod:`factory.features.streaming`: TA-Lib stream handles, pandas' rolling accumulators,
  window helpers, a ladder updated when a higher-timeframe bar completes, the HMM filter one
  step per bar, fracdiff as one dot product): O(window) work per bar, values bit for bit
  the batch ones. :class:`WindowFeatureStream` is the reference it replaced: the whole
  pipeline recomputed over a trailing window of bars for every bar.
* **Model**: for a single model fed by the tabular or sequence adapter, the newest feature
  rows go straight through the adapter's ``input_from_rows`` (the numpy path its
  ``transform`` uses) into the model: no DataFrame, no Dataset. Other predictors (ensembles,
  multi-resolution and price-context inputs, which read bars) run their own batch code on a
  small dataset of the kept rows and bars.

``update`` refuses a bar that is not newer than the last one, has a non-finite or negative
value, or breaks high >= max(open, close) >= min(open, close) >= low, and leaves the state
untouched when it does. ``timings`` holds, per prediction, the seconds spent on features,
adapter and model, and the process CPU seconds of the whole update.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from factory.bundle.features import FeatureState
from factory.data.bars import BarSet
from factory.errors import FactoryError
from factory.features.streaming_pipeline import FeatureStream
from factory.training.predictor import predict_output

OHLCV = ("open", "high", "low", "close", "volume")
FAST_ADAPTERS = ("tabular", "sequence")


def as_bar(bar, symbol: str) -> tuple[pd.Timestamp, dict[str, float]]:
    """One bar (a mapping with ``timestamp`` and OHLCV, a Series named by its timestamp, or a
    one-row frame) as its UTC timestamp and checked float values."""
    if isinstance(bar, pd.DataFrame):
        if len(bar) != 1:
            raise FactoryError(f"bar for {symbol}: send one bar at a time, got {len(bar)} rows")
        bar = {"timestamp": bar.index[0], **bar.iloc[0].to_dict()}
    elif not isinstance(bar, Mapping) and hasattr(bar, "to_dict"):
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
    ts = ts.tz_convert("UTC")
    o, h, lo, c, v = (values[k] for k in OHLCV)
    if not all(np.isfinite(x) for x in (o, h, lo, c, v)):
        raise FactoryError(f"bar for {symbol} at {ts}: non-finite value; send finite prices "
                           f"and volume")
    if v < 0 or min(o, c) < lo or max(o, c) > h or lo <= 0:
        raise FactoryError(f"bar for {symbol} at {ts}: need low <= open, close <= high, "
                           f"prices > 0 and volume >= 0; got {values}")
    return ts, values


def as_bar_frame(bar, symbol: str) -> pd.DataFrame:
    """One checked bar as a one-row OHLCV frame (float64, UTC time index)."""
    ts, values = as_bar(bar, symbol)
    return pd.DataFrame({k: [values[k]] for k in OHLCV},
                        index=pd.DatetimeIndex([ts], name="timestamp"))


def _newest(values):
    """The last value of an optional per-row output (None stays None)."""
    return None if values is None else np.asarray(values)[-1]


def as_bars_frame(bars: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """A frame of past bars (UTC open-time index, OHLCV) checked as :func:`as_bar` checks one
    bar, vectorised: warm-up histories of any length."""
    missing = [k for k in OHLCV if k not in bars]
    if missing:
        raise FactoryError(f"bars for {symbol}: missing column(s) {missing}; need open, high, "
                           f"low, close, volume")
    values = bars[list(OHLCV)].to_numpy(np.float64)
    o, h, lo, c, v = values.T
    bad = ~np.isfinite(values).all(axis=1) | (v < 0) | (np.minimum(o, c) < lo) | (
        np.maximum(o, c) > h) | (lo <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        got = dict(zip(OHLCV, values[i].tolist(), strict=True))
        raise FactoryError(f"bars for {symbol} at {bars.index[i]}: need finite values, low <= "
                           f"open, close <= high, prices > 0 and volume >= 0; got {got}")
    return bars[list(OHLCV)].astype(np.float64)


class IncrementalFeatureStream:
    """The bundle's feature row of each new bar from per-group state (module docstring)."""

    def __init__(self, state: FeatureState, symbol: str) -> None:
        if state.fitted and symbol not in state.fitted:
            raise FactoryError(f"symbol {symbol!r}: the bundle was trained on "
                               f"{sorted(state.fitted)}; its fitted features (HMM, fracdiff) "
                               f"have no state for it")
        self.state, self.symbol = state, symbol
        self.stream = FeatureStream(state.pipeline(), state.fitted.get(symbol, {}),
                                    state.columns, state.timeframe)

    def warm_up(self, history: pd.DataFrame) -> pd.DataFrame:
        """Feature rows of the history (one batch pass), and every stream's state."""
        self.stream.warm(history[list(OHLCV)])
        return self.state.frame(self.symbol, history)

    def push(self, ts: pd.Timestamp, values: dict) -> np.ndarray:
        return self.stream.update(ts, values)

    def update(self, bar: pd.DataFrame) -> np.ndarray:
        return self.push(bar.index[0], {k: float(bar[k].iloc[0]) for k in OHLCV})


class WindowFeatureStream:
    """Reference: the whole pipeline over the trailing ``window`` bars, for every bar."""

    def __init__(self, state: FeatureState, symbol: str, window: int = 3000) -> None:
        self.state, self.symbol, self.window = state, symbol, int(window)
        self.bars: pd.DataFrame | None = None

    def warm_up(self, history: pd.DataFrame) -> pd.DataFrame:
        """Feature rows of the history (all of it, in one batch pass)."""
        self.bars = history.iloc[-self.window:]
        return self.state.frame(self.symbol, history)

    def push(self, ts: pd.Timestamp, values: dict) -> np.ndarray:
        frame = pd.DataFrame({k: [values[k]] for k in OHLCV},
                             index=pd.DatetimeIndex([ts], name="timestamp"))
        return self.update(frame)

    def update(self, bar: pd.DataFrame) -> np.ndarray:
        self.bars = pd.concat([self.bars, bar]).iloc[-self.window:]
        return self.state.frame(self.symbol, self.bars).to_numpy(np.float32)[-1]


class RowTape:
    """The last ``keep`` rows (feature rows: float32; bars: float64; stamps: int64) in a
    double-capacity buffer: a push is one row copy, a shift every ``keep`` pushes."""

    def __init__(self, keep: int, rows: np.ndarray, dtype=np.float32) -> None:
        self.keep = keep
        self.buf = np.empty((2 * keep, rows.shape[1]), dtype)
        tail = rows[-keep:]
        self.buf[: len(tail)] = tail
        self.n = len(tail)

    def push(self, row: np.ndarray) -> None:
        if self.n == len(self.buf):
            self.buf[: self.keep] = self.buf[self.keep:]
            self.n = self.keep
        self.buf[self.n] = row
        self.n += 1

    def last(self, k: int) -> np.ndarray:
        return self.buf[max(self.n - k, 0): self.n]


class Streamer:
    """One symbol's live predictions from a bundle (see the module docstring).

    ``keep``: rows of features and bars kept for the model side (the adapter's window and
    history needs; default: enough for any shipped adapter). ``feature_stream``: a factory
    ``(state, symbol) -> stream`` (default :class:`IncrementalFeatureStream`; e.g.
    ``lambda s, sym: WindowFeatureStream(s, sym, feature_window)`` for the reference).
    """

    def __init__(self, bundle, symbol: str, keep: int = 1200, feature_window: int = 3000,
                 feature_stream=None) -> None:
        if symbol not in bundle.schema["symbols"]:
            raise FactoryError(f"symbol {symbol!r} is not in the bundle (trained on "
                               f"{bundle.schema['symbols']})")
        self.bundle, self.symbol, self.keep = bundle, symbol, int(keep)
        self.feature_window = int(feature_window)
        states = {"": bundle.features, **bundle.base_features}
        make = feature_stream or IncrementalFeatureStream
        self.streams = {name: make(state, symbol) for name, state in states.items()}
        self.rows: dict[str, RowTape] = {}
        self._ohlcv = RowTape(self.keep, np.empty((0, len(OHLCV))), np.float64)
        self._stamps = RowTape(self.keep, np.empty((0, 1), np.int64), np.int64)  # UTC ns
        self._utc = True
        self.seen = 0
        self.last_ts: pd.Timestamp | None = None
        self.timings: list[tuple[float, float, float, float]] = []
        predictor = bundle.predictor
        self.fast = (not bundle.base_features and hasattr(predictor, "adapter")
                     and getattr(predictor.adapter, "kind", None) in FAST_ADAPTERS)

    @property
    def warm(self) -> bool:
        return self.seen > self.bundle.warmup()

    def needed(self) -> int:
        """Bars still needed before predictions start."""
        return max(self.bundle.warmup() + 1 - self.seen, 0)

    @property
    def bars(self) -> pd.DataFrame:
        """The kept bars (the newest ``keep``) as an OHLCV frame."""
        stamps = self._stamps.last(self.keep)[:, 0]
        index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=self._utc), name="timestamp")
        return pd.DataFrame(self._ohlcv.last(self.keep).copy(), index=index,
                            columns=list(OHLCV))

    def warm_up(self, history: pd.DataFrame) -> None:
        """Feed the past bars (checked, in time order) before live updates start."""
        history = history[list(OHLCV)].astype(np.float64)
        if not history.index.is_monotonic_increasing or history.index.has_duplicates:
            raise FactoryError(f"warm-up history of {self.symbol}: timestamps must be strictly "
                               f"increasing (sort and de-duplicate the bars)")
        for name, stream in self.streams.items():
            frame = stream.warm_up(history)
            self.rows[name] = RowTape(self.keep, frame.to_numpy(np.float32))
        tail = history.iloc[-self.keep:]
        self._ohlcv = RowTape(self.keep, tail.to_numpy(np.float64), np.float64)
        self._stamps = RowTape(self.keep, tail.index.asi8[:, None], np.int64)  # UTC ns
        self._utc = tail.index.tz is not None
        self.seen = len(history)
        self.last_ts = history.index[-1] if len(history) else None

    def update(self, bar) -> dict:
        """The prediction for a new bar (refused, with the state untouched, when invalid)."""
        cpu, t0 = time.process_time(), time.perf_counter()
        ts, values = as_bar(bar, self.symbol)
        if self.last_ts is not None and ts <= self.last_ts:
            raise FactoryError(f"bar for {self.symbol} at {ts} is not after the last one "
                               f"({self.last_ts}); send bars in time order, once each")
        if self.last_ts is None:
            self.warm_up(pd.DataFrame({k: [values[k]] for k in OHLCV},
                                      index=pd.DatetimeIndex([ts], name="timestamp")))
            return self._not_ready(ts)
        for name, stream in self.streams.items():
            self.rows[name].push(stream.push(ts, values))
        self._ohlcv.push([values[k] for k in OHLCV])
        self._stamps.push(ts.value)
        self.seen += 1
        self.last_ts = ts
        t1 = time.perf_counter()
        if not self.warm:
            return self._not_ready(ts)
        out, t_adapter, t_model = self._predict_fast(ts) if self.fast else self._predict(ts)
        if out.get("ready"):
            self.timings.append((t1 - t0, t_adapter, t_model, time.process_time() - cpu))
        return out

    def _not_ready(self, ts) -> dict:
        return {"timestamp": ts, "symbol": self.symbol, "ready": False, "needed": self.needed()}

    def _result(self, ts, proba, expected=None, confidence=None) -> dict:
        out = {"timestamp": ts, "symbol": self.symbol, "p_short": float(proba[0]),
               "p_flat": float(proba[1]), "p_long": float(proba[2])}
        if expected is not None:
            out["expected_return"] = float(expected)
        if confidence is not None:
            out["confidence"] = float(confidence)
        out.update(ready=True, version=self.bundle.manifest.get("version"))
        return out

    def _predict_fast(self, ts) -> tuple[dict, float, float]:
        """A single tabular / sequence model: the newest rows through the adapter's numpy
        path into the model (a window with a non-finite row is not ready, as in batch)."""
        predictor = self.bundle.predictor
        need = predictor.history_rows()
        window = self.rows[""].last(need)
        if len(window) < need or not np.isfinite(window).all():
            return self._not_ready(ts), 0.0, 0.0
        t0 = time.perf_counter()
        x = predictor.adapter.input_from_rows(window)
        t1 = time.perf_counter()
        out = predict_output(predictor.model, x)
        t2 = time.perf_counter()
        return (self._result(ts, out.proba[-1], _newest(out.expected_return),
                             _newest(out.confidence)), t1 - t0, t2 - t1)

    def _dataset(self, name: str, predictor, bars: pd.DataFrame):
        """A small dataset: the newest feature rows the predictor reads (a sequence window,
        else one) over the kept bars (multi-resolution and context inputs read bars)."""
        need = min(predictor.history_rows(), self.rows[name].n, len(bars))
        rows = self.rows[name].last(need)
        state = self.bundle.features if name == "" else self.bundle.base_features[name]
        barset = BarSet(bars={self.symbol: bars}, instruments=self.bundle.instruments,
                        timeframe=self.bundle.timeframe)
        return self.bundle.dataset_from_rows(barset, state, rows, self.symbol,
                                             predictor.needs_geometry)

    def _predict(self, ts) -> tuple[dict, float, float]:
        """Any predictor: its own batch code on a small dataset of the kept rows and bars."""
        t0 = time.perf_counter()
        predictor, bars = self.bundle.predictor, self.bars
        ds = self._dataset("", predictor, bars)
        if self.bundle.base_features:
            predictor.with_datasets({n: self._dataset(n, predictor.bases_[n].predictor, bars)
                                     for n in self.bundle.base_features})
        t1 = time.perf_counter()
        frame = predictor.predict(ds, np.array([len(ds.meta) - 1]))
        t2 = time.perf_counter()
        if len(frame) == 0 or frame["timestamp"].iloc[-1] != ts:
            return self._not_ready(ts), 0.0, 0.0  # the adapter's window is not full
        row = frame.iloc[-1]
        return (self._result(ts, row[["p_short", "p_flat", "p_long"]].to_numpy(np.float64),
                             row.get("expected_return"), row.get("confidence")), t1 - t0, t2 - t1)
