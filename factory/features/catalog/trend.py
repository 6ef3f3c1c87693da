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
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import TA, GroupStream, PandasRolling, Ring, ema


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


class _MovingAverages:
    """:func:`sma` (SMA handle; the close itself for n == 1) and :func:`_ema` handles of
    the close, one per window, shared by the trend groups' streaming forms."""

    def __init__(self, close: np.ndarray, sma_windows=(), ema_windows=()) -> None:
        self.sma = {n: None if n == 1 else TA("SMA", close, timeperiod=n) for n in sma_windows}
        self.ema = {n: TA("EMA", close, timeperiod=n) for n in ema_windows}

    def update(self, c: float) -> tuple[dict, dict]:
        return ({n: c if ta is None else ta.update(c) for n, ta in self.sma.items()},
                {n: ta.update(c) for n, ta in self.ema.items()})


@streaming(ma_ratio)
class _MaRatioStream(GroupStream):
    @classmethod
    def converge(cls, windows) -> int:
        return ema(max_of(windows))

    def warm(self, h) -> None:
        w = self.p["windows"]
        self.ma = _MovingAverages(h["close"], w, w)

    def step(self, b) -> dict[str, float]:
        sma_, ema_ = self.ma.update(b.close)
        out = {f"sma_ratio_{n}": b.close / v - 1.0 for n, v in sma_.items()}
        out.update({f"ema_ratio_{n}": b.close / v - 1.0 for n, v in ema_.items()})
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


@streaming(ma_slope)
class _MaSlopeStream(GroupStream):
    """SMA handles and a ring of the log SMA's last ``lag`` values."""

    @classmethod
    def converge(cls, windows, lag) -> int:
        return max_of(windows) + lag

    def warm(self, h) -> None:
        c, lag = h["close"], self.p["lag"]
        self.ma = _MovingAverages(c, self.p["windows"])
        self.logs = {n: Ring(lag + 1, np.log(sma(c, n))) for n in self.p["windows"]}

    def step(self, b) -> dict[str, float]:
        lag = self.p["lag"]
        out = {}
        for n, value in self.ma.update(b.close)[0].items():
            ring = self.logs[n]
            ring.push(np.log(np.float64(value)))
            out[f"sma_slope_{n}"] = (ring.at(0) - ring.at(lag)) / lag
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


@streaming(ma_cross)
class _MaCrossStream(GroupStream):
    @classmethod
    def converge(cls, pairs) -> int:
        return ema(max_of([slow for _, slow in pairs]))

    def warm(self, h) -> None:
        windows = sorted({n for pair in self.p["pairs"] for n in pair})
        self.ma = _MovingAverages(h["close"], windows, windows)

    def step(self, b) -> dict[str, float]:
        sma_, ema_ = self.ma.update(b.close)
        pairs = self.p["pairs"]
        out = {f"sma_x_{f}_{s}": sma_[f] / sma_[s] - 1.0 for f, s in pairs}
        out.update({f"ema_x_{f}_{s}": ema_[f] / ema_[s] - 1.0 for f, s in pairs})
        return out


@register(warmup=lambda windows: max_of(windows) - 1, category="trend")
def linreg(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50, 100)) -> Columns:
    """Rolling OLS of close on time: slope per bar / close, and the fit's R^2."""
    c = _close(bars)
    out = {}
    for n in windows:
        slope = talib.LINEARREG_SLOPE(c, timeperiod=n)
        var_y = pd.Series(c).rolling(n, min_periods=n).var(ddof=0).to_numpy()
        out[f"lr_slope_{n}"] = slope / c
        out[f"lr_r2_{n}"] = _r2(slope, var_y, n)
    return out


def _r2(slope: np.ndarray, var_y: np.ndarray, n: int) -> np.ndarray:
    """``linreg``'s R^2 from the slope and the population variance of the closes."""
    var_t = (n * n - 1) / 12.0
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(var_y > 0, slope * slope * var_t / var_y, 0.0)
    r2 = np.clip(r2, 0.0, 1.0)
    r2[np.isnan(slope) | np.isnan(var_y)] = np.nan
    return r2


@streaming(linreg)
class _LinregStream(GroupStream):
    """LINEARREG_SLOPE handles and pandas' rolling population variance."""

    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows)

    def warm(self, h) -> None:
        c = h["close"]
        self.ta = {n: TA("LINEARREG_SLOPE", c, timeperiod=n) for n in self.p["windows"]}
        self.var = {n: PandasRolling("var", n, ddof=0) for n in self.p["windows"]}
        for roll in self.var.values():
            roll.warm(c)

    def step(self, b) -> dict[str, float]:
        out = {}
        for n, ta in self.ta.items():
            slope = np.array([ta.update(b.close)])
            r2 = _r2(slope, np.array([self.var[n].push(b.close)]), n)
            out[f"lr_slope_{n}"] = slope[0] / b.close
            out[f"lr_r2_{n}"] = r2[0]
        return out


@register(warmup=lambda period: period, category="trend")
def aroon(bars: pd.DataFrame, period: int = 25) -> Columns:
    """Aroon up and down (TA-Lib) / 100: recency of the window's highest high / lowest low."""
    h, lo = (bars[k].to_numpy(np.float64) for k in ("high", "low"))
    down, up = talib.AROON(h, lo, timeperiod=period)
    return {f"aroon_up_{period}": up / 100.0, f"aroon_down_{period}": down / 100.0}


@streaming(aroon)
class _AroonStream(GroupStream):
    @classmethod
    def converge(cls, period) -> int:
        return period + 1

    def warm(self, h) -> None:
        self.ta = TA("AROON", h["high"], h["low"], timeperiod=self.p["period"])

    def step(self, b) -> dict[str, float]:
        down, up = self.ta.update(b.high, b.low)
        n = self.p["period"]
        return {f"aroon_up_{n}": up / 100.0, f"aroon_down_{n}": down / 100.0}
