"""Volume features: scale-free OBV, volume percentile rank, VWAP distances, MFI, volume ratios.

All columns are free of the volume unit (ratios of volumes) and of the price level (relative
distances), so a 1000x volume or 50x price rescaling leaves them (nearly) unchanged. Volume is
>= 0 by the bar contract; zero-volume windows get the neutral value stated per column.
(Z-scores of log volume are ``vol_z_*`` in :mod:`core`.)

Groups (warm-up = leading bars left undefined, as a function of the resolved params):

* ``obv`` -> ``obv_{w}``: ``sum_{i=t-w+1..t} sign(c_i - c_{i-1}) v_i / sum_{i=t-w+1..t} v_i``,
  i.e. the change of On-Balance Volume over ``w`` bars divided by the window's volume, in
  [-1, 1]; 0 when the window's volume is 0. Warm-up: ``max(windows)``.
* ``volume_percentile`` -> ``vpct_{w}``: share of the other ``w - 1`` volumes of the trailing
  window (ending at t) below ``v_t``, ties counting one half, in [0, 1].
  Warm-up: ``max(windows) - 1``.
* ``session_vwap`` -> ``vwap_sess_dist``: ``(c_t - vwap_t) / c_t`` with the VWAP of the
  typical price ``(h + l + c) / 3`` accumulated from the session's first bar (reset at every
  session start, :func:`temporal.session_starts`); 0 while the session volume is 0.
  Warm-up: ``0``.
* ``rolling_vwap`` -> ``vwap_dist_{w}``: the same distance to the VWAP of the trailing ``w``
  bars (no session reset); 0 when the window's volume is 0. Warm-up: ``max(windows) - 1``.
* ``mfi`` -> ``mfi_{p}``: TA-Lib Money Flow Index rescaled to [-0.5, 0.5]; 0 (neutral) when
  no volume moved the typical price inside the window (TA-Lib returns 0 there).
  Warm-up: ``max(periods)``.
* ``volume_ratio`` -> ``vratio_{s}_{l}``: ``log(mean_s(v) / mean_l(v))`` over trailing
  windows, the ratio floored at ``1e-3``; 0 when ``mean_l(v) == 0``.
  Warm-up: ``max(l over pairs) - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib
from numba import njit

from factory.features.catalog._common import max_of
from factory.features.catalog.temporal import SESSION_GAP_MINUTES, session_starts
from factory.features.registry import Columns, register

RATIO_FLOOR = 1e-3


def _col(bars: pd.DataFrame, key: str) -> np.ndarray:
    return bars[key].to_numpy(np.float64)


def _rolling_sum(values: np.ndarray, w: int) -> np.ndarray:
    return pd.Series(values).rolling(w, min_periods=w).sum().to_numpy()


def _safe_ratio(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """``num / den`` where ``den > 0``, ``fill`` where ``den == 0``, NaN where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / den, fill)
    out[np.isnan(den) | np.isnan(num)] = np.nan
    return out


@register(warmup=lambda windows: max_of(windows), category="volume")
def obv(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 60)) -> Columns:
    """On-Balance-Volume change over a window divided by the window's volume."""
    close, volume = _col(bars, "close"), _col(bars, "volume")
    signed = np.full_like(volume, np.nan)
    signed[1:] = np.sign(np.diff(close)) * volume[1:]
    vol_from_1 = volume.copy()
    vol_from_1[:1] = np.nan
    return {f"obv_{w}": _safe_ratio(_rolling_sum(signed, w), _rolling_sum(vol_from_1, w), 0.0)
            for w in windows}


@njit(cache=True, nogil=True)
def _percentile_kernel(values, w, out):  # pragma: no cover (compiled)
    for t in range(w - 1, values.shape[0]):
        last = values[t]
        below = 0
        ties = 0
        for k in range(t - w + 1, t + 1):
            below += values[k] < last
            ties += values[k] == last
        out[t] = (below + 0.5 * (ties - 1)) / (w - 1)


def trailing_percentile(values: np.ndarray, w: int) -> np.ndarray:
    """Share of the other ``w - 1`` values of the trailing window below the last one (ties
    half): ``(#{v < last} + (#{v == last} - 1) / 2) / (w - 1)`` over the window, counted
    by a compiled loop (the same comparisons and arithmetic as on the window matrix)."""
    values = np.ascontiguousarray(values, np.float64)
    out = np.full(values.size, np.nan)
    if w < 2 or values.size < w:
        if w == 1:
            out[:] = 0.5
        return out
    _percentile_kernel(values, int(w), out)
    return out


@register(warmup=lambda windows: max_of(windows) - 1, category="volume")
def volume_percentile(bars: pd.DataFrame, windows: Sequence[int] = (20, 100)) -> Columns:
    """Percentile rank of the bar's volume within its trailing window."""
    volume = _col(bars, "volume")
    return {f"vpct_{w}": trailing_percentile(volume, w) for w in windows}


def _typical_price(bars: pd.DataFrame) -> np.ndarray:
    return (_col(bars, "high") + _col(bars, "low") + _col(bars, "close")) / 3.0


def _vwap_distance(close: np.ndarray, pv: np.ndarray, vol: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(vol > 0, (close - pv / vol) / close, 0.0)
    dist[np.isnan(vol)] = np.nan
    return dist


@register(warmup=lambda session_gap_minutes: 0, category="volume")
def session_vwap(bars: pd.DataFrame,
                 session_gap_minutes: float = SESSION_GAP_MINUTES) -> Columns:
    """Relative distance of the close to the session VWAP (reset at each session start)."""
    volume = _col(bars, "volume")
    sid = np.cumsum(session_starts(bars.index, session_gap_minutes))
    pv = pd.Series(_typical_price(bars) * volume).groupby(sid).cumsum().to_numpy()
    cum_v = pd.Series(volume).groupby(sid).cumsum().to_numpy()
    return {"vwap_sess_dist": _vwap_distance(_col(bars, "close"), pv, cum_v)}


@register(warmup=lambda windows: max_of(windows) - 1, category="volume")
def rolling_vwap(bars: pd.DataFrame, windows: Sequence[int] = (20, 60)) -> Columns:
    """Relative distance of the close to the VWAP of the trailing window."""
    volume, close = _col(bars, "volume"), _col(bars, "close")
    pv = _typical_price(bars) * volume
    return {f"vwap_dist_{w}": _vwap_distance(close, _rolling_sum(pv, w), _rolling_sum(volume, w))
            for w in windows}


@register(warmup=lambda periods: max_of(periods), category="volume")
def mfi(bars: pd.DataFrame, periods: Sequence[int] = (14, 50)) -> Columns:
    """TA-Lib Money Flow Index rescaled to [-0.5, 0.5] (0 when no money flow)."""
    high, low, close, volume = (_col(bars, k) for k in ("high", "low", "close", "volume"))
    tp = _typical_price(bars)
    moved = np.full_like(volume, np.nan)
    moved[1:] = (tp[1:] != tp[:-1]) * volume[1:]
    out = {}
    for p in periods:
        value = talib.MFI(high, low, close, volume, timeperiod=p) / 100.0 - 0.5
        flow = _rolling_sum(moved, p)
        value[flow == 0] = 0.0
        out[f"mfi_{p}"] = value
    return out


@register(warmup=lambda pairs: max_of([long for _, long in pairs]) - 1, category="volume")
def volume_ratio(bars: pd.DataFrame,
                 pairs: Sequence[Sequence[int]] = ((1, 20), (5, 50), (10, 100))) -> Columns:
    """Log ratio of short to long trailing mean volume."""
    volume = pd.Series(_col(bars, "volume"))
    out = {}
    for short, long in pairs:
        s = volume.rolling(short, min_periods=short).mean().to_numpy()
        m = volume.rolling(long, min_periods=long).mean().to_numpy()
        ratio = np.maximum(_safe_ratio(s, m, 1.0), RATIO_FLOOR)
        out[f"vratio_{short}_{long}"] = np.log(ratio)
    return out
