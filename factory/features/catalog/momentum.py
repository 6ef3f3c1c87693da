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
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import TA, GroupStream, wilder


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


@streaming(roc)
class _RocStream(GroupStream):
    @classmethod
    def lookback(cls, periods) -> int:
        return max_of(periods) + 1

    def step(self, b) -> dict[str, float]:
        return {f"roc_{p}": b.close / b.prev("close", p) - 1.0 for p in self.p["periods"]}


@register(warmup=lambda periods, atr_period: max(max_of(periods), atr_period),
          category="momentum")
def mom_atr(bars: pd.DataFrame, periods: Sequence[int] = (5, 10, 20, 50),
            atr_period: int = 14) -> Columns:
    """Price momentum in ATR units: ``(close_t - close_{t-p}) / ATR_t`` (0 when ATR is 0)."""
    h, lo, c = hlc(bars)
    atr = talib.ATR(h, lo, c, timeperiod=atr_period)
    return {f"mom_atr_{p}": safe_div(_lagged_diff(c, p), atr, 0.0) for p in periods}


@streaming(mom_atr)
class _MomAtrStream(GroupStream):
    @classmethod
    def lookback(cls, periods, atr_period) -> int:
        return max_of(periods) + 1

    @classmethod
    def converge(cls, periods, atr_period) -> int:
        return max(max_of(periods) + 1, wilder(atr_period))

    def warm(self, h) -> None:
        self.atr = TA("ATR", h["high"], h["low"], h["close"], timeperiod=self.p["atr_period"])

    def step(self, b) -> dict[str, float]:
        atr = np.array([self.atr.update(b.high, b.low, b.close)])
        return {f"mom_atr_{p}": safe_div(np.array([b.close - b.prev("close", p)]), atr, 0.0)[0]
                for p in self.p["periods"]}


@register(warmup=lambda period, smooth_k, smooth_d: period + smooth_k + smooth_d - 3,
          category="momentum")
def stochastic(bars: pd.DataFrame, period: int = 14, smooth_k: int = 3,
               smooth_d: int = 3) -> Columns:
    """Slow stochastic %K and %D in [0, 1] (fast %K is 0.5 on a zero high-low range)."""
    h, lo, c = hlc(bars)
    hh, ll = highest_lowest(h, lo, period)
    slow_k = sma(safe_div(c - ll, hh - ll, 0.5), smooth_k)
    return {f"stoch_k_{period}": slow_k, f"stoch_d_{period}": sma(slow_k, smooth_d)}


class _Extremes:
    """HH / LL of the last n bars as :func:`highest_lowest` computes them (TA-Lib MAX /
    MIN handles; the bar itself when n == 1)."""

    def __init__(self, h, n: int) -> None:
        self.n = n
        if n > 1:
            self.hh, self.ll = TA("MAX", h["high"], timeperiod=n), TA("MIN", h["low"], timeperiod=n)

    def update(self, b) -> tuple[float, float]:
        if self.n == 1:
            return b.high, b.low
        return self.hh.update(b.high), self.ll.update(b.low)


def _sma_stream(x: np.ndarray, n: int):
    """A handle for :func:`sma` (TA-Lib SMA; the identity for n == 1)."""
    return None if n == 1 else TA("SMA", x, timeperiod=n)


def _sma_update(handle, x: float) -> float:
    return x if handle is None else handle.update(x)


@streaming(stochastic)
class _StochasticStream(GroupStream):
    """MAX / MIN handles, fast %K per bar, SMA handles on it and on slow %K."""

    @classmethod
    def converge(cls, period, smooth_k, smooth_d) -> int:
        return period + smooth_k + smooth_d

    def warm(self, h) -> None:
        p = self.p
        hh, ll = highest_lowest(h["high"], h["low"], p["period"])
        fast = safe_div(h["close"] - ll, hh - ll, 0.5)
        self.ext = _Extremes(h, p["period"])
        self.k = _sma_stream(fast, p["smooth_k"])
        self.d = _sma_stream(sma(fast, p["smooth_k"]), p["smooth_d"])

    def step(self, b) -> dict[str, float]:
        hh, ll = self.ext.update(b)
        fast = safe_div(np.array([b.close - ll]), np.array([hh - ll]), 0.5)[0]
        slow_k = _sma_update(self.k, fast)
        n = self.p["period"]
        return {f"stoch_k_{n}": slow_k, f"stoch_d_{n}": _sma_update(self.d, slow_k)}


@register(warmup=lambda periods: max_of(periods) - 1, category="momentum")
def willr(bars: pd.DataFrame, periods: Sequence[int] = (14, 28)) -> Columns:
    """Williams %R / 100 in [-1, 0]: ``-(HH - close) / (HH - LL)`` (-0.5 on a zero range)."""
    h, lo, c = hlc(bars)
    out = {}
    for p in periods:
        hh, ll = highest_lowest(h, lo, p)
        out[f"willr_{p}"] = -safe_div(hh - c, hh - ll, 0.5)
    return out


@streaming(willr)
class _WillrStream(GroupStream):
    @classmethod
    def converge(cls, periods) -> int:
        return max_of(periods)

    def warm(self, h) -> None:
        self.ext = {p: _Extremes(h, p) for p in self.p["periods"]}

    def step(self, b) -> dict[str, float]:
        out = {}
        for p, ext in self.ext.items():
            hh, ll = ext.update(b)
            out[f"willr_{p}"] = -safe_div(np.array([hh - b.close]), np.array([hh - ll]), 0.5)[0]
        return out


@register(warmup=lambda periods: max_of(periods) - 1, category="momentum")
def cci(bars: pd.DataFrame, periods: Sequence[int] = (20,)) -> Columns:
    """Commodity Channel Index / 100 (typical price vs its SMA over 0.015 x mean abs dev)."""
    h, lo, c = hlc(bars)
    return {f"cci_{p}": talib.CCI(h, lo, c, timeperiod=p) / 100.0 for p in periods}


@streaming(cci)
class _CciStream(GroupStream):
    @classmethod
    def converge(cls, periods) -> int:
        return max_of(periods)

    def warm(self, h) -> None:
        self.cci = {p: TA("CCI", h["high"], h["low"], h["close"], timeperiod=p)
                    for p in self.p["periods"]}

    def step(self, b) -> dict[str, float]:
        return {f"cci_{p}": ta.update(b.high, b.low, b.close) / 100.0
                for p, ta in self.cci.items()}


@register(warmup=lambda period: 2 * period - 1, category="momentum")
def adx(bars: pd.DataFrame, period: int = 14) -> Columns:
    """Wilder ADX, +DI and -DI (TA-Lib), each divided by 100."""
    h, lo, c = hlc(bars)
    return {
        f"adx_{period}": talib.ADX(h, lo, c, timeperiod=period) / 100.0,
        f"plus_di_{period}": talib.PLUS_DI(h, lo, c, timeperiod=period) / 100.0,
        f"minus_di_{period}": talib.MINUS_DI(h, lo, c, timeperiod=period) / 100.0,
    }


@streaming(adx)
class _AdxStream(GroupStream):
    @classmethod
    def converge(cls, period) -> int:
        return 2 * wilder(period)

    def warm(self, h) -> None:
        n, args = self.p["period"], (h["high"], h["low"], h["close"])
        self.ta = {k: TA(k, *args, timeperiod=n) for k in ("ADX", "PLUS_DI", "MINUS_DI")}

    def step(self, b) -> dict[str, float]:
        n = self.p["period"]
        values = {k: ta.update(b.high, b.low, b.close) / 100.0 for k, ta in self.ta.items()}
        return {f"adx_{n}": values["ADX"], f"plus_di_{n}": values["PLUS_DI"],
                f"minus_di_{n}": values["MINUS_DI"]}
