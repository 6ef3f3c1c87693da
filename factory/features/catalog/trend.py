"""Trend features: price vs moving averages, MA slopes and crossovers, rolling regression.

SMAs are trailing means (TA-Lib running sums); EMAs are TA-Lib's (alpha = 2 / (n + 1), seeded
with the SMA of the first n bars, so the first EMA is at row n - 1). Warm-up of each group
(the first fully defined row is exactly this index), in the resolved params:

* ``ma_ratio``: ``max(windows) - 1``. ``sma_ratio_{n} = close / SMA_n - 1`` and
  ``ema_ratio_{n} = close / EMA_n - 1``.
* ``ma_slope``: ``max(windows) - 1 + lag``. Per-bar log slope of the SMA:
  ``sma_slope_{n} = log(SMA_n[t] / SMA_n[t - lag]) / lag``.
* ``ma_cross``: ``max(slow of pairs) - 1``. ``sma_x_{f}_{s} = SMA_f / SMA_s - 1`` and
  ``ema_x_{f}_{s} = EMA_f / EMA_s - 1``.
* ``linreg``: ``max(windows) - 1``. OLS of close on time over the last n bars (TA-Lib
  LINEARREG_SLOPE): ``lr_slope_{n}`` = slope per bar / close; ``lr_r2_{n}`` = R^2 =
  slope^2 var(t) / var(close) (population variances, var(t) = (n^2 - 1) / 12), clipped to
  [0, 1], and 0 when the window's closes are all equal.
* ``aroon``: ``period``. TA-Lib Aroon up/down / 100 in [0, 1]: ``(period - bars since the
  highest high (lowest low) of the last period + 1 bars) / period``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib

from factory.features.catalog._common import max_of, sma
from factory.features.registry import Columns, register


def _close(bars: pd.DataFrame) -> np.ndarray:
    return bars["close"].to_numpy(np.float64)


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    return talib.EMA(x, timeperiod=n)


@register(warmup=lambda windows: max_of(windows) - 1, category="trend")
def ma_ratio(bars: pd.DataFrame, windows: Sequence[int] = (5, 10, 20, 50, 100)) -> Columns:
    """Close relative to its SMA and EMA: ``close / MA - 1`` over several windows."""
    c = _close(bars)
    out = {}
    for n in windows:
        out[f"sma_ratio_{n}"] = c / sma(c, n) - 1.0
    for n in windows:
        out[f"ema_ratio_{n}"] = c / _ema(c, n) - 1.0
    return out


@register(warmup=lambda windows, lag: max_of(windows) - 1 + lag, category="trend")
def ma_slope(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50, 100),
             lag: int = 5) -> Columns:
    """Per-bar log slope of the SMA over ``lag`` bars: ``log(SMA_t / SMA_{t-lag}) / lag``."""
    c = _close(bars)
    out = {}
    for n in windows:
        log_ma = np.log(sma(c, n))
        slope = np.full_like(c, np.nan)
        slope[lag:] = (log_ma[lag:] - log_ma[:-lag]) / lag
        out[f"sma_slope_{n}"] = slope
    return out


@register(warmup=lambda pairs: max_of([slow for _, slow in pairs]) - 1, category="trend")
def ma_cross(bars: pd.DataFrame,
             pairs: Sequence[Sequence[int]] = ((5, 20), (10, 50), (20, 100))) -> Columns:
    """Moving-average crossover distances ``MA_fast / MA_slow - 1`` (SMA and EMA)."""
    c = _close(bars)
    out = {}
    for fast, slow in pairs:
        out[f"sma_x_{fast}_{slow}"] = sma(c, fast) / sma(c, slow) - 1.0
    for fast, slow in pairs:
        out[f"ema_x_{fast}_{slow}"] = _ema(c, fast) / _ema(c, slow) - 1.0
    return out


@register(warmup=lambda windows: max_of(windows) - 1, category="trend")
def linreg(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50, 100)) -> Columns:
    """Rolling OLS of close on time: slope per bar / close, and the fit's R^2."""
    c = _close(bars)
    out = {}
    for n in windows:
        slope = talib.LINEARREG_SLOPE(c, timeperiod=n)
        var_y = pd.Series(c).rolling(n, min_periods=n).var(ddof=0).to_numpy()
        var_t = (n * n - 1) / 12.0
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(var_y > 0, slope * slope * var_t / var_y, 0.0)
        r2 = np.clip(r2, 0.0, 1.0)
        r2[np.isnan(slope) | np.isnan(var_y)] = np.nan
        out[f"lr_slope_{n}"] = slope / c
        out[f"lr_r2_{n}"] = r2
    return out


@register(warmup=lambda period: period, category="trend")
def aroon(bars: pd.DataFrame, period: int = 25) -> Columns:
    """Aroon up and down (TA-Lib) / 100: recency of the window's highest high / lowest low."""
    h, lo = (bars[k].to_numpy(np.float64) for k in ("high", "low"))
    down, up = talib.AROON(h, lo, timeperiod=period)
    return {f"aroon_up_{period}": up / 100.0, f"aroon_down_{period}": down / 100.0}
