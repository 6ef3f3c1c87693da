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
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import TA, GroupStream, PandasRolling, ema, wilder


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


@streaming(returns)
class _ReturnsStream(GroupStream):
    """Differences of the tape's log closes."""

    @classmethod
    def lookback(cls, lags) -> int:
        return max_of(lags) + 1

    def step(self, b) -> dict[str, float]:
        return {f"ret_{lag}": b.logc - b.prev("logc", lag) for lag in self.p["lags"]}


@register(warmup=lambda windows: max_of(windows), category="volatility")
def volatility(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 60)) -> Columns:
    """Rolling standard deviation (ddof=1) of one-bar log returns, trailing window."""
    r1 = pd.Series(np.log(_close(bars))).diff()
    return {f"vol_{w}": r1.rolling(w, min_periods=w).std().to_numpy() for w in windows}


@streaming(volatility)
class _VolatilityStream(GroupStream):
    """pandas' rolling std of the one-bar log return, one value at a time."""

    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows) + 1

    def warm(self, h) -> None:
        self.rolls = {w: PandasRolling("std", w) for w in self.p["windows"]}
        for roll in self.rolls.values():
            roll.warm(h["r1"])

    def step(self, b) -> dict[str, float]:
        r = b.r1
        return {f"vol_{w}": roll.push(r) for w, roll in self.rolls.items()}


@register(warmup=lambda period: period, category="volatility")
def atr(bars: pd.DataFrame, period: int = 14) -> Columns:
    """Wilder ATR divided by close (a scale-free volatility)."""
    h, lo, c = (bars[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    return {f"atr_{period}": talib.ATR(h, lo, c, timeperiod=period) / c}


@streaming(atr)
class _AtrStream(GroupStream):
    @classmethod
    def converge(cls, period) -> int:
        return wilder(period)

    def warm(self, h) -> None:
        self.atr = TA("ATR", h["high"], h["low"], h["close"], timeperiod=self.p["period"])

    def step(self, b) -> dict[str, float]:
        return {f"atr_{self.p['period']}": self.atr.update(b.high, b.low, b.close) / b.close}


@register(warmup=lambda periods: max_of(periods), category="momentum")
def rsi(bars: pd.DataFrame, periods: Sequence[int] = (14,)) -> Columns:
    """Wilder RSI rescaled to [-0.5, 0.5]."""
    c = _close(bars)
    return {f"rsi_{p}": talib.RSI(c, timeperiod=p) / 100.0 - 0.5 for p in periods}


@streaming(rsi)
class _RsiStream(GroupStream):
    @classmethod
    def converge(cls, periods) -> int:
        return max(wilder(p) for p in periods)

    def warm(self, h) -> None:
        self.rsi = {p: TA("RSI", h["close"], timeperiod=p) for p in self.p["periods"]}

    def step(self, b) -> dict[str, float]:
        return {f"rsi_{p}": ta.update(b.close) / 100.0 - 0.5 for p, ta in self.rsi.items()}


@register(warmup=lambda fast, slow, signal: slow + signal - 2, category="momentum")
def macd(bars: pd.DataFrame, fast: int = 12, slow: int = 26, signal: int = 9) -> Columns:
    """MACD line, signal line and histogram, each divided by close."""
    c = _close(bars)
    line, sig, hist = talib.MACD(c, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return {"macd": line / c, "macd_signal": sig / c, "macd_hist": hist / c}


@streaming(macd)
class _MacdStream(GroupStream):
    @classmethod
    def converge(cls, fast, slow, signal) -> int:
        return ema(max(fast, slow)) + ema(signal)

    def warm(self, h) -> None:
        p = self.p
        self.macd = TA("MACD", h["close"], fastperiod=p["fast"], slowperiod=p["slow"],
                       signalperiod=p["signal"])

    def step(self, b) -> dict[str, float]:
        line, sig, hist = self.macd.update(b.close)
        return {"macd": line / b.close, "macd_signal": sig / b.close, "macd_hist": hist / b.close}


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


@streaming(bollinger)
class _BollingerStream(GroupStream):
    @classmethod
    def converge(cls, period, nbdev) -> int:
        return period

    def warm(self, h) -> None:
        n, dev = self.p["period"], self.p["nbdev"]
        self.bb = TA("BBANDS", h["close"], timeperiod=n, nbdevup=dev, nbdevdn=dev, matype=0)

    def step(self, b) -> dict[str, float]:
        upper, mid, lower = self.bb.update(b.close)
        span = upper - lower
        pct_b = np.nan if span != span else (b.close - lower) / span if span > 0 else 0.5
        n = self.p["period"]
        return {f"bb_pctb_{n}": pct_b, f"bb_width_{n}": span / mid}


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


@streaming(volume_zscore)
class _VolumeZStream(GroupStream):
    """pandas' rolling mean and std of log volume (two accumulators, as batch)."""

    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows)

    def warm(self, h) -> None:
        lv = np.log1p(h["volume"])
        self.rolls = {w: (PandasRolling("mean", w), PandasRolling("std", w))
                      for w in self.p["windows"]}
        for mean, std in self.rolls.values():
            mean.warm(lv)
            std.warm(lv)

    def step(self, b) -> dict[str, float]:
        lv = np.log1p(b.volume)
        out = {}
        for w, (roll_mean, roll_std) in self.rolls.items():
            mean, std = roll_mean.push(lv), roll_std.push(lv)
            out[f"vol_z_{w}"] = np.nan if std != std else (lv - mean) / std if std > 0 else 0.0
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


@streaming(time_of_day)
class _TimeOfDayStream(GroupStream):
    @classmethod
    def lookback(cls) -> int:
        return 1

    def step(self, b) -> dict[str, float]:
        ts = b.ts
        day = 2 * np.pi * np.float64(ts.hour * 60 + ts.minute) / 1440.0
        week = 2 * np.pi * np.float64(ts.day_of_week) / 7.0
        return {"tod_sin": np.sin(day), "tod_cos": np.cos(day), "dow_sin": np.sin(week),
                "dow_cos": np.cos(week)}
