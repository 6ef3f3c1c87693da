"""The core causal feature set: each function maps one symbol's bars to named columns.

Every feature at bar t uses bars <= t only (rolling windows end at t; TA-Lib's recursive
indicators are seeded at the first bar and run forward). Each group registers its warm-up
(leading bars left undefined); the pipeline drops them. Standard indicators come from
TA-Lib (Wilder smoothing for RSI/ATR, population std for Bollinger bands).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib

from factory.features.catalog._common import max_of
from factory.features.registry import Columns, register


def _close(bars: pd.DataFrame) -> np.ndarray:
    return bars["close"].to_numpy(np.float64)


@register(warmup=lambda lags: max_of(lags), category="returns")
def returns(bars: pd.DataFrame, lags: Sequence[int] = (1, 2, 3, 5, 10, 20)) -> Columns:
    """Log returns over several lags: ``log(close_t / close_{t-lag})``."""
    logc = np.log(_close(bars))
    out = {}
    for lag in lags:
        r = np.full_like(logc, np.nan)
        r[lag:] = logc[lag:] - logc[:-lag]
        out[f"ret_{lag}"] = r
    return out


@register(warmup=lambda windows: max_of(windows), category="volatility")
def volatility(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 60)) -> Columns:
    """Rolling standard deviation (ddof=1) of one-bar log returns, trailing window."""
    r1 = pd.Series(np.log(_close(bars))).diff()
    return {f"vol_{w}": r1.rolling(w, min_periods=w).std().to_numpy() for w in windows}


@register(warmup=lambda period: period, category="volatility")
def atr(bars: pd.DataFrame, period: int = 14) -> Columns:
    """Wilder ATR divided by close (a scale-free volatility)."""
    h, lo, c = (bars[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    return {f"atr_{period}": talib.ATR(h, lo, c, timeperiod=period) / c}


@register(warmup=lambda periods: max_of(periods), category="momentum")
def rsi(bars: pd.DataFrame, periods: Sequence[int] = (14,)) -> Columns:
    """Wilder RSI rescaled to [-0.5, 0.5]."""
    c = _close(bars)
    return {f"rsi_{p}": talib.RSI(c, timeperiod=p) / 100.0 - 0.5 for p in periods}


@register(warmup=lambda fast, slow, signal: slow + signal - 2, category="momentum")
def macd(bars: pd.DataFrame, fast: int = 12, slow: int = 26, signal: int = 9) -> Columns:
    """MACD line, signal line and histogram, each divided by close."""
    c = _close(bars)
    line, sig, hist = talib.MACD(c, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return {"macd": line / c, "macd_signal": sig / c, "macd_hist": hist / c}


@register(warmup=lambda period, nbdev: period - 1, category="bands")
def bollinger(bars: pd.DataFrame, period: int = 20, nbdev: float = 2.0) -> Columns:
    """Bollinger %b and band width (SMA +- nbdev population std)."""
    c = _close(bars)
    upper, mid, lower = talib.BBANDS(c, timeperiod=period, nbdevup=nbdev, nbdevdn=nbdev, matype=0)
    span = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        pct_b = np.where(span > 0, (c - lower) / span, 0.5)
    pct_b[np.isnan(span)] = np.nan
    return {f"bb_pctb_{period}": pct_b, f"bb_width_{period}": span / mid}


@register(warmup=lambda windows: max_of(windows) - 1, category="volume")
def volume_zscore(bars: pd.DataFrame, windows: Sequence[int] = (20, 60)) -> Columns:
    """Z-score of log volume against its trailing mean and std (0 when the std is 0)."""
    lv = pd.Series(np.log1p(bars["volume"].to_numpy(np.float64)))
    out = {}
    for w in windows:
        roll = lv.rolling(w, min_periods=w)
        mean, std = roll.mean().to_numpy(), roll.std().to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(std > 0, (lv.to_numpy() - mean) / std, 0.0)
        z[np.isnan(std)] = np.nan
        out[f"vol_z_{w}"] = z
    return out


@register(warmup=lambda: 0, category="temporal")
def time_of_day(bars: pd.DataFrame) -> Columns:
    """Cyclical encodings of the bar's UTC time of day and day of week."""
    idx = bars.index
    minutes = (idx.hour * 60 + idx.minute).to_numpy(np.float64)
    dow = idx.day_of_week.to_numpy(np.float64)
    day, week = 2 * np.pi * minutes / 1440.0, 2 * np.pi * dow / 7.0
    return {"tod_sin": np.sin(day), "tod_cos": np.cos(day), "dow_sin": np.sin(week),
            "dow_cos": np.cos(week)}
