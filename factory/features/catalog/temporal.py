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

from factory.features.registry import Columns, register

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


def internal_bar_strength(bars: pd.DataFrame) -> np.ndarray:
    """``(close - low) / (high - low)``; 0.5 when ``high == low``."""
    high, low, close = (bars[k].to_numpy(np.float64) for k in ("high", "low", "close"))
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
