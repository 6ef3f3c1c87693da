"""Momentum oscillators, every one scale-free (price differences divided by close or ATR).

RSI(2)/RSI(14) and MACD live in :mod:`factory.features.catalog.core`. ATR and the
directional indicators use Wilder smoothing (TA-Lib). Warm-up of each group (leading bars
left undefined; the first fully defined row is exactly this index), in the resolved params:

* ``roc``: ``max(periods)``. ``roc_{p} = close_t / close_{t-p} - 1``.
* ``mom_atr``: ``max(max(periods), atr_period)``.
  ``mom_atr_{p} = (close_t - close_{t-p}) / ATR_t`` (0 when the ATR is 0).
* ``stochastic``: ``period + smooth_k + smooth_d - 3``. Slow stochastic in [0, 1]:
  fast %K = (close - LL_n) / (HH_n - LL_n) over the last ``period`` bars (0.5 when the
  range is 0), ``stoch_k`` = SMA(fast %K, smooth_k), ``stoch_d`` = SMA(stoch_k, smooth_d).
* ``willr``: ``max(periods) - 1``. Williams %R / 100, in [-1, 0]:
  ``-(HH_n - close) / (HH_n - LL_n)`` (-0.5 when the range is 0).
* ``cci``: ``max(periods) - 1``. Lambert CCI / 100 (TA-Lib: typical price, SMA, mean
  absolute deviation, constant 0.015; TA-Lib gives 0 when the deviation is 0).
* ``adx``: ``2 * period - 1``. Wilder ADX, +DI and -DI (TA-Lib), each / 100, in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib

from factory.features.catalog._common import highest_lowest, hlc, max_of, safe_div, sma
from factory.features.registry import Columns, register


def _lagged_diff(x: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[lag:] = x[lag:] - x[:-lag]
    return out


@register(warmup=lambda periods: max_of(periods), category="momentum")
def roc(bars: pd.DataFrame, periods: Sequence[int] = (30, 50, 100)) -> Columns:
    """Rate of change ``close_t / close_{t-p} - 1`` (the short lags live in ``returns``)."""
    c = bars["close"].to_numpy(np.float64)
    out = {}
    for p in periods:
        r = np.full_like(c, np.nan)
        r[p:] = c[p:] / c[:-p] - 1.0
        out[f"roc_{p}"] = r
    return out


@register(warmup=lambda periods, atr_period: max(max_of(periods), atr_period),
          category="momentum")
def mom_atr(bars: pd.DataFrame, periods: Sequence[int] = (5, 10, 20, 50),
            atr_period: int = 14) -> Columns:
    """Price momentum in ATR units: ``(close_t - close_{t-p}) / ATR_t`` (0 when ATR is 0)."""
    h, lo, c = hlc(bars)
    atr = talib.ATR(h, lo, c, timeperiod=atr_period)
    return {f"mom_atr_{p}": safe_div(_lagged_diff(c, p), atr, 0.0) for p in periods}


@register(warmup=lambda period, smooth_k, smooth_d: period + smooth_k + smooth_d - 3,
          category="momentum")
def stochastic(bars: pd.DataFrame, period: int = 14, smooth_k: int = 3,
               smooth_d: int = 3) -> Columns:
    """Slow stochastic %K and %D in [0, 1] (fast %K is 0.5 on a zero high-low range)."""
    h, lo, c = hlc(bars)
    hh, ll = highest_lowest(h, lo, period)
    slow_k = sma(safe_div(c - ll, hh - ll, 0.5), smooth_k)
    return {f"stoch_k_{period}": slow_k, f"stoch_d_{period}": sma(slow_k, smooth_d)}


@register(warmup=lambda periods: max_of(periods) - 1, category="momentum")
def willr(bars: pd.DataFrame, periods: Sequence[int] = (14, 28)) -> Columns:
    """Williams %R / 100 in [-1, 0]: ``-(HH - close) / (HH - LL)`` (-0.5 on a zero range)."""
    h, lo, c = hlc(bars)
    out = {}
    for p in periods:
        hh, ll = highest_lowest(h, lo, p)
        out[f"willr_{p}"] = -safe_div(hh - c, hh - ll, 0.5)
    return out


@register(warmup=lambda periods: max_of(periods) - 1, category="momentum")
def cci(bars: pd.DataFrame, periods: Sequence[int] = (20,)) -> Columns:
    """Commodity Channel Index / 100 (typical price vs its SMA over 0.015 x mean abs dev)."""
    h, lo, c = hlc(bars)
    return {f"cci_{p}": talib.CCI(h, lo, c, timeperiod=p) / 100.0 for p in periods}


@register(warmup=lambda period: 2 * period - 1, category="momentum")
def adx(bars: pd.DataFrame, period: int = 14) -> Columns:
    """Wilder ADX, +DI and -DI (TA-Lib), each divided by 100."""
    h, lo, c = hlc(bars)
    return {
        f"adx_{period}": talib.ADX(h, lo, c, timeperiod=period) / 100.0,
        f"plus_di_{period}": talib.PLUS_DI(h, lo, c, timeperiod=period) / 100.0,
        f"minus_di_{period}": talib.MINUS_DI(h, lo, c, timeperiod=period) / 100.0,
    }
