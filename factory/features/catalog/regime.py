"""Volatility and trend regimes: plain causal feature groups (bars <= t only).

* ``volatility_regime``: trailing realised vol's percentile rank over a trailing lookback,
  and a low/normal/high bucket. Warm-up ``window + lookback - 1``.
* ``trend_regime``: trailing least-squares trend of log close: a trend-to-noise z-score, the
  fit's R^2, and a down/flat/up bucket. Warm-up ``window - 1``.

The HMM regime probabilities are fitted on training bars and live in
:mod:`factory.features.regimes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from factory.errors import FactoryError
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import GroupStream, PandasRolling, Ring
from factory.features.streaming_kernels import count_valid, rank_average


# --------------------------------------------------------------------------------------
# volatility and trend regimes (plain feature groups)
# --------------------------------------------------------------------------------------
@register(warmup=lambda window, lookback, low, high: int(window) + int(lookback) - 1,
          category="regime")
def volatility_regime(
    bars: pd.DataFrame, window: int = 20, lookback: int = 1000, low: float = 1 / 3,
    high: float = 2 / 3,
) -> Columns:
    """Where today's vol sits in its own recent history.

    * ``vol_rank_{window}_{lookback}``: the trailing ``window``-bar realised vol (std, ddof=1,
      of 1-bar log returns, as ``core.volatility``) ranked among its last ``lookback`` values
      (bars t-lookback+1..t, ties averaged), scaled to [0, 1]: 0 = lowest, 1 = highest.
    * ``vol_regime_{window}_{lookback}``: -1 (calm: rank < ``low``), 0 (normal), 1 (high:
      rank > ``high``).

    Warm-up: ``window + lookback - 1`` leading NaN rows.
    """
    window, lookback = int(window), int(lookback)
    if window < 2 or lookback < 2 or not 0.0 <= low <= high <= 1.0:
        raise FactoryError(
            f"volatility_regime: need window >= 2, lookback >= 2 and 0 <= low <= high <= 1; "
            f"got window={window}, lookback={lookback}, low={low}, high={high}"
        )
    r1 = pd.Series(np.log(bars["close"].to_numpy(np.float64))).diff()
    vol = r1.rolling(window, min_periods=window).std()
    rank = vol.rolling(lookback, min_periods=lookback).rank(method="average").to_numpy()
    return _vol_regime_columns(rank, window, lookback, low, high)


def _vol_regime_columns(rank: np.ndarray, window: int, lookback: int, low: float,
                        high: float) -> Columns:
    rank = (rank - 1.0) / (lookback - 1.0)
    bucket = np.where(rank < low, -1.0, np.where(rank > high, 1.0, 0.0))
    bucket[np.isnan(rank)] = np.nan
    return {f"vol_rank_{window}_{lookback}": rank, f"vol_regime_{window}_{lookback}": bucket}


@streaming(volatility_regime)
class _VolRegimeStream(GroupStream):
    """pandas' rolling std of the return, and its rank among the last ``lookback`` vols
    (the skiplist's average rank, counted on the window)."""

    @classmethod
    def converge(cls, window, lookback, low, high) -> int:
        return int(window) + int(lookback)

    def warm(self, h) -> None:
        self.std = PandasRolling("std", int(self.p["window"]))
        self.vols = Ring(int(self.p["lookback"]), self.std.warm(h["r1"]))

    def step(self, b) -> dict[str, float]:
        p = self.p
        window, lookback = int(p["window"]), int(p["lookback"])
        vol = self.std.push(b.r1)
        self.vols.push(vol)
        recent = self.vols.last(lookback)
        rank = rank_average(recent, vol) if count_valid(recent) >= lookback else np.nan
        return {k: v[0] for k, v in _vol_regime_columns(np.array([rank]), window, lookback,
                                                         p["low"], p["high"]).items()}


@register(warmup=lambda window, threshold, clip: int(window) - 1, category="regime")
def trend_regime(
    bars: pd.DataFrame, window: int = 50, threshold: float = 1.0, clip: float = 10.0
) -> Columns:
    """Least-squares trend of log close over the trailing ``window`` bars (t-window+1..t).

    * ``trend_z_{window}``: the fitted move over the window (slope x (window-1)) divided by
      the move a driftless random walk with the window's 1-bar return std would make
      (std x sqrt(window-1)); clipped to +-``clip`` (a noiseless line would be infinite).
      Under a random walk its std is ~1.1.
    * ``trend_r2_{window}``: R^2 of the line fit, in [0, 1] (0 for a flat window).
    * ``trend_regime_{window}``: 1 (up: z >= ``threshold``), -1 (down: z <= -``threshold``),
      0 otherwise.

    Computed by elementwise sums over the window's lags (no rolling sums that drift), so a
    value at t depends on bars t-window+1..t only. Warm-up: ``window - 1`` leading NaN rows.
    """
    w = int(window)
    if w < 3 or threshold < 0 or clip <= 0:
        raise FactoryError(f"trend_regime: need window >= 3, threshold >= 0 and clip > 0; got "
                           f"window={window}, threshold={threshold}, clip={clip}")
    return _trend_columns(np.log(bars["close"].to_numpy(np.float64)), w, threshold, clip)


@njit(cache=True, nogil=True)
def _trend_sums(y, w, num, ss_yy, ss_r):  # pragma: no cover (compiled)
    """Per window ``y[s .. s + w - 1]``: the centred cross sum with time, the sum of squared
    deviations and of squared one-bar deviations from the mean step, each summed over the
    window's lags in order (no running sums that drift: a row reads its window only)."""
    xbar = (w - 1) / 2.0
    for s in range(y.shape[0] - w + 1):
        last = y[s + w - 1]
        acc_n = 0.0
        acc_t = 0.0
        for i in range(w):
            yc = y[s + i] - last
            acc_t += yc
            acc_n += yc * (i - xbar)
        ybar = acc_t / w
        acc_y = 0.0
        for i in range(w):
            yc = (y[s + i] - last) - ybar
            acc_y += yc * yc
        rbar = (last - y[s]) / (w - 1)
        acc_r = 0.0
        for i in range(1, w):
            yc = (y[s + i] - y[s + i - 1]) - rbar
            acc_r += yc * yc
        num[s], ss_yy[s], ss_r[s] = acc_n, acc_y, acc_r


def _trend_columns(y: np.ndarray, w: int, threshold: float, clip: float) -> Columns:
    """``trend_regime``'s columns at every position of the log closes ``y``."""
    n = len(y)
    z = np.full(n, np.nan)
    r2 = np.full(n, np.nan)
    if n >= w:
        m = n - w + 1
        s_xx = w * (w * w - 1) / 12.0
        num, ss_yy, ss_r = np.empty(m), np.empty(m), np.empty(m)
        _trend_sums(np.ascontiguousarray(y, np.float64), w, num, ss_yy, ss_r)
        slope = num / s_xx
        move = slope * (w - 1)
        noise = np.sqrt(ss_r / (w - 2)) * np.sqrt(w - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = np.where(noise > 0, move / noise, np.where(move == 0, 0.0,
                                                             np.sign(move) * np.inf))
            rr = np.where(ss_yy > 0, num * num / (s_xx * ss_yy), 0.0)
        z[w - 1 :] = np.clip(zz, -clip, clip)
        r2[w - 1 :] = np.clip(rr, 0.0, 1.0)
    bucket = np.where(z >= threshold, 1.0, np.where(z <= -threshold, -1.0, 0.0))
    bucket[np.isnan(z)] = np.nan
    return {f"trend_z_{w}": z, f"trend_r2_{w}": r2, f"trend_regime_{w}": bucket}


@streaming(trend_regime)
class _TrendRegimeStream(GroupStream):
    """The batch sums on exactly the last ``window`` log closes (same elementwise order)."""

    @classmethod
    def lookback(cls, window, threshold, clip) -> int:
        return int(window)

    def step(self, b) -> dict[str, float]:
        w = int(self.p["window"])
        cols = _trend_columns(b.last("logc", w), w, self.p["threshold"], self.p["clip"])
        return {k: v[-1] for k, v in cols.items()}


# Leading undefined bars, as a function of the group's parameters (as core.WARMUP).
