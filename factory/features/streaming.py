"""Streaming feature groups: a group's columns for one new bar from O(window) state.

Batch features (:meth:`FeaturePipeline.transform`) recompute every group over all bars.
A live loop gets one bar at a time, so each registered group may declare a *streaming
form* next to its batch function (``@streaming(<group fn>)`` on a :class:`GroupStream`
subclass, in the same catalog module; see :mod:`factory.features.registry`). A form
``warm``-s its state on the history once (vectorised, with the batch helpers) and then
``step``-s one bar at a time with the same arithmetic as the batch function:

* TA-Lib calls keep a ``talib.stream`` handle (:class:`TA`): O(1) ``update`` whose value
  equals the batch function's last value bit for bit;
* pandas rolling sums, means, variances and covariances run pandas' own online
  accumulator (:class:`~factory.features.streaming_kernels.PandasRolling`), bit for bit;
* window features (lags, percentiles, regressions, wavelets, fracdiff) apply the batch
  helper to exactly the window they read (the :class:`Tape` keeps the last bars);
* session state (start detection, running highs/lows, Kahan cumulative sums) is carried.

A group without a form streams through :class:`WindowStream`, its batch function over a
trailing window (pandas per bar: slower, and exact only where the value at t depends on that
window alone). Per-bar scalars are numpy float64 and every logarithm / exponential goes
through numpy (whose results equal on one value and on an array; ``math`` and compiled code
differ in the last bit), so a streamed value equals the batch value bit for bit
(tests/test_streaming_groups.py).

``converge`` of a form is the history (in bars of its own timeframe) after which a stream
warmed on that much history agrees with one warmed on all history: the window for window
features, and for recursive smoothing (EMA, Wilder) the bars until the start-up transient is
below ``TOL`` (1e-6) relative to the feature's scale. It is listed in docs/streaming.md.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import talib.abstract
import talib.stream
from talib._ta_lib import InsufficientHistory

from factory.errors import FactoryError
from factory.features.registry import FeatureGroup
from factory.features.streaming_kernels import PandasRolling

__all__ = ["TA", "Bar", "GroupSet", "GroupStream", "History", "PandasRolling", "Ring",
           "WindowStream", "ema", "smoothing", "wilder"]

OHLCV = ("open", "high", "low", "close", "volume")
TAPE = (*OHLCV, "logc")
TOL = 1e-6


def smoothing(alpha: float) -> int:
    """Bars until a first-order recursion ``s_t = (1 - alpha) s_{t-1} + ...`` forgets its
    start to ``TOL``."""
    return int(math.ceil(math.log(TOL) / math.log(1.0 - alpha)))


def wilder(n: int) -> int:
    """Convergence of a Wilder-smoothed indicator of period ``n`` (RSI, ATR, DI)."""
    return int(n) + smoothing(1.0 / int(n))


def ema(n: int) -> int:
    """Convergence of TA-Lib's SMA-seeded EMA of period ``n``."""
    return int(n) + smoothing(2.0 / (int(n) + 1))


class Ring:
    """The last ``size`` values of a series in a double-capacity buffer: O(1) amortised
    ``push``, ``last(k)`` a contiguous view."""

    def __init__(self, size: int, values: np.ndarray | None = None) -> None:
        self.size = max(int(size), 1)
        self.buf = np.full(2 * self.size, np.nan)
        self.n = 0
        if values is not None and len(values):
            tail = np.asarray(values, np.float64)[-self.size:]
            self.buf[: len(tail)] = tail
            self.n = len(tail)

    def push(self, x: float) -> None:
        if self.n == len(self.buf):
            self.buf[: self.size] = self.buf[self.size:]
            self.n = self.size
        self.buf[self.n] = x
        self.n += 1

    def last(self, k: int) -> np.ndarray:
        return self.buf[max(self.n - int(k), 0): self.n]

    def at(self, lag: int = 0) -> float:
        """The value ``lag`` pushes ago (0: the newest); NaN before the start."""
        return self.buf[self.n - 1 - lag] if lag < self.n else np.nan


class Tape:
    """The last bars of one series (OHLCV and log close), one :class:`Ring` per column."""

    def __init__(self, size: int, bars: pd.DataFrame) -> None:
        self.size = size
        values = {k: bars[k].to_numpy(np.float64) for k in OHLCV}
        values["logc"] = np.log(values["close"])
        self.rings = {k: Ring(size, values[k]) for k in TAPE}

    def push(self, values: dict) -> None:
        for k, ring in self.rings.items():
            ring.push(values[k])


class History:
    """One series' history, for :meth:`GroupStream.warm`: float64 columns and shared derived
    arrays (log close, one-bar log returns, session starts), each computed once."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars, self.index = bars, bars.index
        self._memo: dict = {}

    def __len__(self) -> int:
        return len(self.bars)

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._memo:
            if key == "logc":
                self._memo[key] = np.log(self["close"])
            elif key == "r1":  # pd.Series(logc).diff()
                r = np.full(len(self), np.nan)
                r[1:] = self["logc"][1:] - self["logc"][:-1]
                self._memo[key] = r
            else:
                self._memo[key] = self.bars[key].to_numpy(np.float64)
        return self._memo[key]

    def starts(self, gap: float) -> np.ndarray:
        from factory.features.catalog.temporal import session_starts

        key = ("starts", float(gap))
        if key not in self._memo:
            self._memo[key] = session_starts(self.index, gap)
        return self._memo[key]


class Bar:
    """One new bar as a step sees it: OHLCV and log close (numpy float64), its timestamp,
    its position ``n`` in the series, the :class:`Tape` (this bar included) and the
    series' session trackers; derived values are computed once per bar."""

    __slots__ = ("open", "high", "low", "close", "volume", "logc", "ts", "n", "tape",
                 "_set", "_memo")

    def __init__(self, group_set, values: dict, ts: pd.Timestamp, n: int) -> None:
        self.open, self.high, self.low = values["open"], values["high"], values["low"]
        self.close, self.volume, self.logc = values["close"], values["volume"], values["logc"]
        self.ts, self.n, self.tape, self._set = ts, n, group_set.tape, group_set
        self._memo: dict = {}

    def prev(self, key: str, lag: int = 1) -> float:
        """The tape's ``key`` ``lag`` bars ago (NaN before the first bar)."""
        return self.tape.rings[key].at(lag)

    def last(self, key: str, k: int) -> np.ndarray:
        """The last ``k`` values of ``key`` (this bar last) as a view."""
        return self.tape.rings[key].last(k)

    @property
    def r1(self) -> float:
        """One-bar log return (NaN on the first bar)."""
        return self.logc - self.prev("logc")

    def session(self, gap: float) -> tuple[bool, int]:
        """(this bar opens a session, position of the session's first bar)."""
        key = ("session", gap)
        if key not in self._memo:
            self._memo[key] = self._set.sessions[float(gap)].step(self)
        return self._memo[key]

    def masked_r(self, gap: float) -> float:
        """One-bar log return, 0 on a session's first bar (an overnight jump)."""
        start, _ = self.session(gap)
        return 0.0 if start and self.n > 0 else self.r1


class GroupStream:
    """The streaming form of one feature group (see the module docstring).

    ``p`` holds the group's resolved parameters. ``warm`` sets the state up from the
    history (the tape already holds its last bars); ``step`` returns the group's columns
    for one new bar. ``lookback``: bars of the tape a step reads; ``converge``: the history
    after which the stream's values agree with a stream warmed on all history (``None``:
    one session, for values anchored at the session's first bar).
    """

    group: str = ""
    exact = "bit for bit"

    def __init__(self, params: dict) -> None:
        self.p = params

    @classmethod
    def lookback(cls, **params) -> int:
        return 2

    @classmethod
    def converge(cls, **params) -> int | None:
        return cls.lookback(**params)

    def warm(self, h: History) -> None:
        """Set the state up from the history (default: nothing beyond the tape)."""

    def step(self, b: Bar) -> dict[str, float]:  # pragma: no cover - interface
        raise NotImplementedError


class WindowStream(GroupStream):
    """Generic fallback: the group's batch function over its trailing ``window`` bars (a
    pandas frame per bar: slower; exact where the value at t reads that window alone)."""

    exact = "exact within the window; recursive groups to their transient"

    def __init__(self, group: FeatureGroup, params: dict) -> None:
        super().__init__(params)
        self.fn = group.fn
        self.window = fallback_window(group, params)
        self.bars: pd.DataFrame | None = None

    def warm(self, h: History) -> None:
        self.bars = h.bars[list(OHLCV)].iloc[-self.window:]

    def step(self, b: Bar) -> dict[str, float]:
        row = pd.DataFrame({k: [getattr(b, k)] for k in OHLCV}, index=pd.DatetimeIndex(
            [b.ts], name="timestamp"))
        self.bars = pd.concat([self.bars, row]).iloc[-self.window:]
        return {k: v[-1] for k, v in self.fn(self.bars, **self.p).items()}


def fallback_window(group: FeatureGroup, params: dict) -> int:
    """The fallback's window: ten times the registered warm-up (recursive groups forget
    their start within a few time constants), at least 256 bars."""
    return max(10 * (group.warmup_bars(params) + 1), 256)


class TA:
    """A TA-Lib stream handle (``talib.stream.<name>``): opened on the history, updated in
    O(1) per bar, its value bitwise the batch function's last value. Until the series is
    long enough to open it (TA-Lib's lookback; leading NaN bars are not history) the inputs
    are kept and the value is NaN, as the batch value is there."""

    def __init__(self, name: str, *arrays: np.ndarray, **params) -> None:
        self.name, self.params = name, params
        self.n_out = len(talib.abstract.Function(name).output_names)
        self.handle = None
        self.pending = [np.asarray(a, np.float64) for a in arrays]
        self._open()

    def _open(self) -> None:
        try:
            self.handle = getattr(talib.stream, self.name)(*self.pending, **self.params)
        except InsufficientHistory:
            return
        self.pending = []

    def update(self, *values: float):
        if self.handle is None:
            self.pending = [np.append(p, v) for p, v in zip(self.pending, values, strict=True)]
            self._open()
            if self.handle is None:
                return np.nan if self.n_out == 1 else (np.nan,) * self.n_out
            return self.handle.value
        try:
            return self.handle.update(*values)
        except Exception as exc:  # TA-Lib refuses a non-finite input after the start
            raise FactoryError(f"feature stream: TA-Lib {self.name}{self.params} got the "
                               f"input {values} ({exc}); features need finite bars") from exc


def group_columns(group: FeatureGroup, params: dict, bars: pd.DataFrame) -> list[str]:
    """The column names the group produces with ``params`` (from a few bars)."""
    return list(group.fn(bars.iloc[: min(len(bars), 300)], **params))


class GroupSet:
    """The streaming forms of some groups on one series of bars (the base bars, or one
    ladder rung's bars); only the groups that produce a ``wanted`` column (all: None)."""

    def __init__(self, groups: dict[str, dict], registry: dict[str, FeatureGroup],
                 wanted: set[str] | None = None) -> None:
        self.specs = [(registry[g], registry[g].resolve(p)) for g, p in groups.items()]
        self.wanted = wanted
        self.streams: list[GroupStream] = []
        self.fallbacks: list[str] = []

    def warm(self, bars: pd.DataFrame) -> None:
        """Set every stream up from ``bars`` (the whole history; it may be empty)."""
        from factory.features.catalog.temporal import Sessions

        self.streams, self.fallbacks, self.names = [], [], []
        sample = bars if len(bars) else _empty_bars(bars)
        for group, params in self.specs:
            names = group_columns(group, params, sample)
            if self.wanted is not None and not set(names) & self.wanted:
                continue
            self.names += names
            if group.stream is None:
                self.streams.append(WindowStream(group, params))
                self.fallbacks.append(group.name)
            else:
                self.streams.append(group.stream(params))
        size = max([s.lookback(**s.p) if not isinstance(s, WindowStream) else 2
                    for s in self.streams] + [2])
        self.tape = Tape(size, bars)
        self.n = len(bars)
        self.unit = bars.index.unit if isinstance(bars.index, pd.DatetimeIndex) else "ns"
        gaps = {float(s.p["session_gap_minutes"]) for s in self.streams
                if "session_gap_minutes" in s.p}
        history = History(bars)
        self.sessions = {gap: Sessions(gap, history) for gap in gaps}
        for stream in self.streams:
            stream.warm(history)

    def step(self, values: dict, ts: pd.Timestamp) -> dict[str, float]:
        """The columns of every kept group for one new bar (``values``: OHLCV floats)."""
        values = {k: np.float64(values[k]) for k in OHLCV}
        values["logc"] = np.log(values["close"])
        self.tape.push(values)
        bar = Bar(self, values, ts, self.n)
        self.n += 1
        out: dict[str, float] = {}
        for stream in self.streams:
            out.update(stream.step(bar))
        return out


def _empty_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """A one-bar frame to name columns by when the history is empty."""
    index = pd.DatetimeIndex([pd.Timestamp("2000-01-03", tz="UTC")], name="timestamp")
    return pd.DataFrame({k: [1.0] for k in OHLCV}, index=index)
