"""Session clock and bar-shape features, plus the session detection other modules share.

Sessions. Futures trade ~23-hour sessions separated by a daily break (22:00-23:00 UTC) and
weekends, and feeds have outages. A bar opens a new session when the time *missing* before
it exceeds ``session_gap_minutes`` (default 30): ``gap_t = (stamp_t - stamp_{t-1}) -
spacing_t``, where ``spacing_t`` is the smallest stamp step seen so far (the bar length once
two adjacent bars have been seen). Only bars <= t are used, so the detection is causal; the
first bar of the data counts as a session start (the data may begin mid-session; nothing
earlier is known). A feed outage longer than the threshold also opens a new session.

Groups (warm-up = leading bars left undefined, as a function of the resolved params):

* ``session`` -> ``sess_minutes`` (minutes since the session's first bar opened),
  ``sess_bars`` (bars since it), ``sess_start`` (1.0 on a session's first bar, else 0.0),
  ``sess_ret`` (log close minus log open of the session's first bar) and ``sess_pos``
  (close within the running session high-low range, 0.5 while the range is 0).
  Warm-up: ``0``.
* ``ibs`` -> ``ibs`` (internal bar strength ``(close - low) / (high - low)``, 0.5 when
  ``high == low``) and ``ibs_mean_{w}`` (its trailing mean over ``w`` bars).
  Warm-up: ``max(windows) - 1``.

Time-of-day / day-of-week encodings live in :mod:`core` (``tod_*``, ``dow_*``).
Prices are > 0 by the bar contract (``validate_bars``); :func:`log_price` clips a non-positive
price to ``1e-12`` so that an unvalidated frame still gives finite outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from factory.features.registry import Columns, register, streaming
from factory.features.streaming import GroupStream, PandasRolling

SESSION_GAP_MINUTES = 30.0
PRICE_FLOOR = 1e-12


def log_price(values) -> np.ndarray:
    """``log`` of a price array, non-positive prices clipped to ``PRICE_FLOOR``."""
    return np.log(np.maximum(np.asarray(values, dtype=np.float64), PRICE_FLOOR))


def elapsed_minutes(index: pd.DatetimeIndex) -> np.ndarray:
    """Minutes from the first stamp to each stamp (float64; any datetime resolution)."""
    if len(index) == 0:
        return np.zeros(0)
    return ((index - index[0]) / pd.Timedelta(minutes=1)).to_numpy(np.float64)


def session_starts(index: pd.DatetimeIndex,
                   gap_minutes: float = SESSION_GAP_MINUTES) -> np.ndarray:
    """Boolean array: True on the first bar of each session (see the module docstring)."""
    n = len(index)
    starts = np.zeros(n, dtype=bool)
    if n == 0:
        return starts
    starts[0] = True
    if n > 1:
        step = np.diff(elapsed_minutes(index))
        spacing = np.minimum.accumulate(step)
        starts[1:] = (step - spacing) > float(gap_minutes)
    return starts


def session_first_bar(starts: np.ndarray) -> np.ndarray:
    """Position of the current session's first bar, for every bar."""
    pos = np.arange(starts.size)
    return np.maximum.accumulate(np.where(starts, pos, 0))


def mask_session_gaps(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Copy of one-bar differences with the session-start entries (which span a break) set
    to 0; the first entry (no predecessor) stays NaN."""
    out = values.copy()
    out[1:][starts[1:]] = 0.0
    return out


class Sessions:
    """:func:`session_starts` one bar at a time: the running minimum spacing, the elapsed
    minutes (as :func:`elapsed_minutes` computes them from the series' first stamp) and
    the current session's first bar, set up from a history
    (:class:`~factory.features.streaming.History`)."""

    def __init__(self, gap: float, history) -> None:
        self.gap = float(gap)
        index = history.index
        self.unit = index.unit if len(index) else "ns"
        self.per_minute = np.float64(pd.Timedelta(minutes=1) / pd.Timedelta(1, self.unit))
        self.ns_per_unit = int(pd.Timedelta(1, self.unit).value)
        self.t0 = int(index[0].value) if len(index) else None
        elapsed = elapsed_minutes(index)
        starts = history.starts(gap)
        self.elapsed = elapsed[-1] if len(index) else np.nan
        self.spacing = np.min(np.diff(elapsed)) if len(index) > 1 else None
        self.first = int(np.flatnonzero(starts)[-1]) if len(index) else 0
        self.first_elapsed = elapsed[self.first] if len(index) else np.nan

    def step(self, bar) -> tuple[bool, int]:
        if self.t0 is None:
            self.t0, start = int(bar.ts.value), True
            elapsed = np.float64(0.0)
        else:
            elapsed = np.float64((int(bar.ts.value) - self.t0) // self.ns_per_unit) \
                / self.per_minute
            step = elapsed - self.elapsed
            self.spacing = step if self.spacing is None else np.minimum(self.spacing, step)
            start = bool((step - self.spacing) > self.gap)
        self.elapsed = elapsed
        if start:
            self.first, self.first_elapsed = bar.n, elapsed
        return start, self.first


@register(warmup=lambda session_gap_minutes: 0, category="temporal")
def session(bars: pd.DataFrame, session_gap_minutes: float = SESSION_GAP_MINUTES) -> Columns:
    """Session clock: minutes and bars since the session opened, start flag, return and
    range position since the open."""
    starts = session_starts(bars.index, session_gap_minutes)
    first = session_first_bar(starts)
    elapsed = elapsed_minutes(bars.index)
    minutes = elapsed - elapsed[first]
    sid = np.cumsum(starts)
    high = bars["high"].to_numpy(np.float64)
    low = bars["low"].to_numpy(np.float64)
    close = bars["close"].to_numpy(np.float64)
    run_hi = pd.Series(high).groupby(sid).cummax().to_numpy()
    run_lo = pd.Series(low).groupby(sid).cummin().to_numpy()
    span = run_hi - run_lo
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(span > 0, (close - run_lo) / span, 0.5)
    open_log = log_price(bars["open"].to_numpy(np.float64))
    return {
        "sess_minutes": minutes,
        "sess_bars": (np.arange(len(bars)) - first).astype(np.float64),
        "sess_start": starts.astype(np.float64),
        "sess_ret": log_price(close) - open_log[first],
        "sess_pos": pos,
    }


@streaming(session)
class _SessionStream(GroupStream):
    """The session clock from the session tracker, the session's first log open and its
    running high / low (cummax / cummin are exact)."""

    @classmethod
    def converge(cls, **params) -> None:
        return None  # anchored at the session's first bar

    def warm(self, h) -> None:
        gap = self.p["session_gap_minutes"]
        first = int(np.flatnonzero(h.starts(gap))[-1]) if len(h) else 0
        self.open_log = log_price(h["open"][first:first + 1])[0] if len(h) else np.nan
        self.hi = np.max(h["high"][first:]) if len(h) else np.nan
        self.lo = np.min(h["low"][first:]) if len(h) else np.nan

    def step(self, b) -> dict[str, float]:
        start, first = b.session(self.p["session_gap_minutes"])
        tracker = b._set.sessions[float(self.p["session_gap_minutes"])]
        if start:
            self.open_log = log_price(b.last("open", 1))[0]
            self.hi, self.lo = b.high, b.low
        else:
            self.hi, self.lo = np.maximum(self.hi, b.high), np.minimum(self.lo, b.low)
        span = self.hi - self.lo
        return {"sess_minutes": tracker.elapsed - tracker.first_elapsed,
                "sess_bars": np.float64(b.n - first), "sess_start": np.float64(start),
                "sess_ret": log_price(b.last("close", 1))[0] - self.open_log,
                "sess_pos": (b.close - self.lo) / span if span > 0 else np.float64(0.5)}


def internal_bar_strength(bars) -> np.ndarray:
    """``(close - low) / (high - low)``; 0.5 when ``high == low`` (``bars``: a frame, or
    a mapping of arrays)."""
    high, low, close = (np.asarray(bars[k], np.float64) for k in ("high", "low", "close"))
    span = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, (close - low) / span, 0.5)


@register(warmup=lambda windows: max(windows, default=1) - 1, category="temporal")
def ibs(bars: pd.DataFrame, windows: Sequence[int] = (5, 20)) -> Columns:
    """Internal bar strength and its trailing means."""
    value = internal_bar_strength(bars)
    out = {"ibs": value}
    series = pd.Series(value)
    for w in windows:
        out[f"ibs_mean_{w}"] = series.rolling(w, min_periods=w).mean().to_numpy()
    return out


@streaming(ibs)
class _IbsStream(GroupStream):
    """IBS of the bar and pandas' rolling means of it."""

    @classmethod
    def converge(cls, windows) -> int:
        return max(windows, default=1)

    def warm(self, h) -> None:
        value = internal_bar_strength(h)
        self.means = {w: PandasRolling("mean", w) for w in self.p["windows"]}
        for roll in self.means.values():
            roll.warm(value)

    def step(self, b) -> dict[str, float]:
        value = internal_bar_strength({k: b.last(k, 1) for k in ("high", "low", "close")})[0]
        out = {"ibs": value}
        out.update({f"ibs_mean_{w}": roll.push(value) for w, roll in self.means.items()})
        return out
