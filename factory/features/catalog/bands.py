"""Channel features: Keltner and Donchian channels, distance to the rolling high / low.

Bollinger %b and width live in :mod:`factory.features.catalog.core`. Rolling highs and lows
include the current bar (``HH_n`` = max of the last n highs, ``LL_n`` = min of the last n
lows); ATR is Wilder's (TA-Lib), EMA is TA-Lib's (SMA-seeded). Warm-up of each group (the
first fully defined row is exactly this index), in the resolved params:

* ``keltner``: ``max(periods)`` (the ATR's lookback). Channel ``EMA_n +- mult x ATR_n``:
  ``kc_pos_{n} = (close - lower) / (upper - lower)`` (0.5 when the ATR is 0) and
  ``kc_width_{n} = (upper - lower) / EMA_n``.
* ``donchian``: ``max(windows) - 1``. ``dc_pos_{n} = (close - LL_n) / (HH_n - LL_n)``
  (0.5 when the channel is flat) and ``dc_width_{n} = (HH_n - LL_n) / close``.
* ``dist_hilo``: ``max(max(windows) - 1, atr_period)``. In ATR units:
  ``dist_high_{n} = (HH_n - close) / ATR`` and ``dist_low_{n} = (close - LL_n) / ATR``
  (0 when the ATR is 0, which with Wilder smoothing means every true range so far was 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib

from factory.features.catalog._common import highest_lowest, hlc, max_of, safe_div
from factory.features.catalog.momentum import _Extremes
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import TA, GroupStream, ema, wilder


@register(warmup=lambda periods, mult: max_of(periods), category="bands")
def keltner(bars: pd.DataFrame, periods: Sequence[int] = (20, 50), mult: float = 2.0) -> Columns:
    """Keltner channel (EMA +- mult x ATR) position and width."""
    h, lo, c = hlc(bars)
    out = {}
    for n in periods:
        mid = talib.EMA(c, timeperiod=n)
        span = 2.0 * mult * talib.ATR(h, lo, c, timeperiod=n)
        lower = mid - 0.5 * span
        out[f"kc_pos_{n}"] = safe_div(c - lower, span, 0.5)
        out[f"kc_width_{n}"] = span / mid
    return out


def _one(x: float) -> np.ndarray:
    return np.array([x], np.float64)


@streaming(keltner)
class _KeltnerStream(GroupStream):
    @classmethod
    def converge(cls, periods, mult) -> int:
        return max(max(ema(n), wilder(n)) for n in periods)

    def warm(self, h) -> None:
        args = (h["high"], h["low"], h["close"])
        self.ta = {n: (TA("EMA", h["close"], timeperiod=n), TA("ATR", *args, timeperiod=n))
                   for n in self.p["periods"]}

    def step(self, b) -> dict[str, float]:
        out = {}
        for n, (ema_, atr) in self.ta.items():
            mid = ema_.update(b.close)
            span = 2.0 * self.p["mult"] * atr.update(b.high, b.low, b.close)
            lower = mid - 0.5 * span
            out[f"kc_pos_{n}"] = safe_div(_one(b.close - lower), _one(span), 0.5)[0]
            out[f"kc_width_{n}"] = span / mid
        return out


@register(warmup=lambda windows: max_of(windows) - 1, category="bands")
def donchian(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50)) -> Columns:
    """Donchian channel (rolling high / low) position in [0, 1] and width / close."""
    h, lo, c = hlc(bars)
    out = {}
    for n in windows:
        hh, ll = highest_lowest(h, lo, n)
        out[f"dc_pos_{n}"] = safe_div(c - ll, hh - ll, 0.5)
        out[f"dc_width_{n}"] = (hh - ll) / c
    return out


@streaming(donchian)
class _DonchianStream(GroupStream):
    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows)

    def warm(self, h) -> None:
        self.ext = {n: _Extremes(h, n) for n in self.p["windows"]}

    def step(self, b) -> dict[str, float]:
        out = {}
        for n, ext in self.ext.items():
            hh, ll = ext.update(b)
            out[f"dc_pos_{n}"] = safe_div(_one(b.close - ll), _one(hh - ll), 0.5)[0]
            out[f"dc_width_{n}"] = (hh - ll) / b.close
        return out


@register(warmup=lambda windows, atr_period: max(max_of(windows) - 1, atr_period),
          category="bands")
def dist_hilo(bars: pd.DataFrame, windows: Sequence[int] = (20, 50, 100),
              atr_period: int = 14) -> Columns:
    """Distance from close to the rolling high and to the rolling low, in ATR units."""
    h, lo, c = hlc(bars)
    atr = talib.ATR(h, lo, c, timeperiod=atr_period)
    out = {}
    for n in windows:
        hh, ll = highest_lowest(h, lo, n)
        out[f"dist_high_{n}"] = safe_div(hh - c, atr, 0.0)
        out[f"dist_low_{n}"] = safe_div(c - ll, atr, 0.0)
    return out


@streaming(dist_hilo)
class _DistHiloStream(GroupStream):
    @classmethod
    def converge(cls, windows, atr_period) -> int:
        return max(max_of(windows), wilder(atr_period))

    def warm(self, h) -> None:
        self.atr = TA("ATR", h["high"], h["low"], h["close"], timeperiod=self.p["atr_period"])
        self.ext = {n: _Extremes(h, n) for n in self.p["windows"]}

    def step(self, b) -> dict[str, float]:
        atr = _one(self.atr.update(b.high, b.low, b.close))
        out = {}
        for n, ext in self.ext.items():
            hh, ll = ext.update(b)
            out[f"dist_high_{n}"] = safe_div(_one(hh - b.close), atr, 0.0)[0]
            out[f"dist_low_{n}"] = safe_div(_one(b.close - ll), atr, 0.0)[0]
        return out
