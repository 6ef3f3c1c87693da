"""Range-based and realised volatility estimators, as per-bar volatilities (log units).

With ``hl = ln(H/L)``, ``co = ln(C/O)``, ``hc = ln(H/C)``, ``ho = ln(H/O)``, ``lc = ln(L/C)``,
``lo = ln(L/O)`` of one bar, the per-bar variance estimators are

* Parkinson (1980): ``hl^2 / (4 ln 2)``;
* Garman-Klass (1980): ``0.5 hl^2 - (2 ln 2 - 1) co^2``;
* Rogers-Satchell (1991): ``hc ho + lc lo``;

each averaged over the trailing ``n`` bars and reported as ``sqrt(mean)`` (a trailing mean of
Garman-Klass below 0, possible in theory, is reported as 0). Trailing means and variances
are TA-Lib running sums; a volatility below 1e-9 (far below one tick, i.e. the rounding
residue of a running sum over a flat stretch) is reported as exactly 0. Yang-Zhang (2000)
combines the overnight (open vs previous close) variance, the open-to-close variance (both
sample, ddof 1) and the Rogers-Satchell mean: ``sqrt(s_o^2 + k s_c^2 + (1 - k) RS)``,
``k = 0.34 / (1.34 + (n + 1) / (n - 1))``. Warm-up of each group (the first fully defined
row is exactly this index), in the resolved params:

* ``parkinson``, ``garman_klass``, ``rogers_satchell``: ``max(windows) - 1``.
* ``yang_zhang``: ``max(windows)`` (the overnight return needs the previous close).
* ``realised_vol``: ``max(windows)``. ``rv_{n} = sqrt(sum of the last n squared one-bar log
  returns)`` (not annualised, not per bar: it grows like sqrt(n)).
* ``vol_of_vol``: ``vol_window + max(windows) - 1``. With the per-bar realised vol
  ``v = sqrt(mean of the last vol_window squared log returns)``, ``volvol_{vw}_{n}`` is the
  sample std of ``v`` over the last n bars divided by its mean there (0 when the mean is 0,
  i.e. below 1e-9).
* ``range_atr``: ``max(period, short, long)``. ``range_atr_{p} = (high - low) / ATR_p`` and
  ``atr_ratio_{s}_{l} = ATR_s / ATR_l`` (Wilder ATR; both 1 when the denominator is 0, which
  with Wilder smoothing means every true range so far was 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib

from factory.features.catalog._common import max_of, sma
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import TA, Bar, GroupStream, wilder

_LN2 = np.log(2.0)
_TINY_VOL = 1e-9  # per-bar vols below this (far below one tick) are running-sum residue: 0


def _ohlc(bars) -> tuple[np.ndarray, ...]:
    """Open, high, low, close as float64 arrays (``bars``: a frame, a streaming history, or
    a streamed bar, whose arrays hold its one value)."""
    if isinstance(bars, Bar):
        return tuple(bars.last(k, 1) for k in ("open", "high", "low", "close"))
    return tuple(np.asarray(bars[k], np.float64) for k in ("open", "high", "low", "close"))


def _park_bar(h: np.ndarray, lo: np.ndarray) -> np.ndarray:
    return np.log(h / lo) ** 2 / (4.0 * _LN2)


def _gk_bar(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    return 0.5 * np.log(h / lo) ** 2 - (2.0 * _LN2 - 1.0) * np.log(c / o) ** 2


def _sqrt(var: np.ndarray) -> np.ndarray:
    """Volatility from a variance; rounding residue (< 0 or vol < 1e-9) reads 0, NaN stays."""
    vol = np.sqrt(np.maximum(var, 0.0))
    vol[vol < _TINY_VOL] = 0.0
    return vol


def _sample_var(x: np.ndarray, n: int) -> np.ndarray:
    """Trailing n-bar sample variance (ddof 1) of a near-zero-mean series (TA-Lib VAR)."""
    return talib.VAR(x, timeperiod=n, nbdev=1.0) * (n / (n - 1.0))


def _rs_bar(o, h, lo, c) -> np.ndarray:
    return np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)


def _log_returns(c: np.ndarray) -> np.ndarray:
    logc = np.log(c)
    r = np.full_like(logc, np.nan)
    r[1:] = logc[1:] - logc[:-1]
    return r


class _MeanVolStream(GroupStream):
    """``_sqrt(sma(per-bar variance, n))`` per window: SMA handles on the batch per-bar
    estimator (a subclass names it in ``bar`` and its columns in ``prefix``)."""

    prefix = ""

    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows)

    @staticmethod
    def bar(o, h, lo, c) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def warm(self, h) -> None:
        var = self.bar(*_ohlc(h))
        self.sma = {n: _Sma(var, n) for n in self.p["windows"]}

    def step(self, b) -> dict[str, float]:
        var = self.bar(*_ohlc(b))[0]
        return {f"{self.prefix}_{n}": _sqrt(np.array([s.update(var)]))[0]
                for n, s in self.sma.items()}


class _Sma:
    """A streaming :func:`sma` (TA-Lib SMA handle; the identity for n == 1)."""

    def __init__(self, x: np.ndarray, n: int) -> None:
        self.ta = None if n == 1 else TA("SMA", x, timeperiod=n)

    def update(self, x: float) -> float:
        return x if self.ta is None else self.ta.update(x)


class _SampleVar:
    """A streaming :func:`_sample_var` (TA-Lib VAR handle times n / (n - 1))."""

    def __init__(self, x: np.ndarray, n: int) -> None:
        self.n, self.ta = n, TA("VAR", x, timeperiod=n, nbdev=1.0)

    def update(self, x: float) -> float:
        return self.ta.update(x) * (self.n / (self.n - 1.0))


@register(warmup=lambda windows: max_of(windows) - 1, category="volatility")
def parkinson(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50)) -> Columns:
    """Parkinson high-low volatility per bar over trailing windows."""
    _, h, lo, _ = _ohlc(bars)
    var = _park_bar(h, lo)
    return {f"park_vol_{n}": _sqrt(sma(var, n)) for n in windows}


@streaming(parkinson)
class _ParkinsonStream(_MeanVolStream):
    prefix = "park_vol"

    @staticmethod
    def bar(o, h, lo, c) -> np.ndarray:
        return _park_bar(h, lo)


@register(warmup=lambda windows: max_of(windows) - 1, category="volatility")
def garman_klass(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50)) -> Columns:
    """Garman-Klass OHLC volatility per bar over trailing windows."""
    var = _gk_bar(*_ohlc(bars))
    return {f"gk_vol_{n}": _sqrt(sma(var, n)) for n in windows}


@streaming(garman_klass)
class _GarmanKlassStream(_MeanVolStream):
    prefix = "gk_vol"
    bar = staticmethod(_gk_bar)


@register(warmup=lambda windows: max_of(windows) - 1, category="volatility")
def rogers_satchell(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50)) -> Columns:
    """Rogers-Satchell drift-independent volatility per bar over trailing windows."""
    var = _rs_bar(*_ohlc(bars))
    return {f"rs_vol_{n}": _sqrt(sma(var, n)) for n in windows}


@streaming(rogers_satchell)
class _RogersSatchellStream(_MeanVolStream):
    prefix = "rs_vol"
    bar = staticmethod(_rs_bar)


@register(warmup=lambda windows: max_of(windows), category="volatility")
def yang_zhang(bars: pd.DataFrame, windows: Sequence[int] = (10, 20, 50)) -> Columns:
    """Yang-Zhang volatility per bar: overnight + k open-close + (1 - k) Rogers-Satchell."""
    o, h, lo, c = _ohlc(bars)
    overnight = np.full_like(o, np.nan)
    overnight[1:] = np.log(o[1:] / c[:-1])
    open_close = np.log(c / o)
    rs = _rs_bar(o, h, lo, c)
    out = {}
    for n in windows:
        k = 0.34 / (1.34 + (n + 1) / (n - 1))
        var = (_sample_var(overnight, n) + k * _sample_var(open_close, n)
               + (1.0 - k) * sma(rs, n))
        out[f"yz_vol_{n}"] = _sqrt(var)
    return out


@streaming(yang_zhang)
class _YangZhangStream(GroupStream):
    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows) + 1

    def warm(self, h) -> None:
        o, hi, lo, c = _ohlc(h)
        overnight = np.full_like(o, np.nan)
        overnight[1:] = np.log(o[1:] / c[:-1])
        open_close, rs = np.log(c / o), _rs_bar(o, hi, lo, c)
        self.ta = {n: (_SampleVar(overnight, n), _SampleVar(open_close, n), _Sma(rs, n))
                   for n in self.p["windows"]}

    def step(self, b) -> dict[str, float]:
        o, hi, lo, c = _ohlc(b)
        overnight = np.log(o / np.array([b.prev("close")]))[0]
        open_close, rs = np.log(c / o)[0], _rs_bar(o, hi, lo, c)[0]
        out = {}
        for n, (var_o, var_c, mean_rs) in self.ta.items():
            k = 0.34 / (1.34 + (n + 1) / (n - 1))
            vo = np.nan if b.n == 0 else var_o.update(overnight)
            var = vo + k * var_c.update(open_close) + (1.0 - k) * mean_rs.update(rs)
            out[f"yz_vol_{n}"] = _sqrt(np.array([var]))[0]
        return out


@register(warmup=lambda windows: max_of(windows), category="volatility")
def realised_vol(bars: pd.DataFrame, windows: Sequence[int] = (5, 30, 100)) -> Columns:
    """Realised volatility: sqrt of the sum of the last n squared one-bar log returns."""
    r2 = _log_returns(bars["close"].to_numpy(np.float64)) ** 2
    return {f"rv_{n}": _sqrt(sma(r2, n) * n) for n in windows}


@streaming(realised_vol)
class _RealisedVolStream(GroupStream):
    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows) + 1

    def warm(self, h) -> None:
        r2 = _log_returns(h["close"]) ** 2
        self.sma = {n: _Sma(r2, n) for n in self.p["windows"]}

    def step(self, b) -> dict[str, float]:
        r2 = (np.array([b.r1]) ** 2)[0]
        return {f"rv_{n}": _sqrt(np.array([s.update(r2) * n]))[0] for n, s in self.sma.items()}


@register(warmup=lambda vol_window, windows: vol_window + max_of(windows) - 1,
          category="volatility")
def vol_of_vol(bars: pd.DataFrame, vol_window: int = 20,
               windows: Sequence[int] = (20, 50)) -> Columns:
    """Coefficient of variation (std / mean) of the rolling per-bar realised vol."""
    r2 = _log_returns(bars["close"].to_numpy(np.float64)) ** 2
    vol = _sqrt(sma(r2, vol_window))
    out = {}
    for n in windows:
        std, mean = _sqrt(_sample_var(vol, n)), sma(vol, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            cv = np.where(mean >= _TINY_VOL, std / mean, 0.0)
        cv[np.isnan(std) | np.isnan(mean)] = np.nan
        out[f"volvol_{vol_window}_{n}"] = cv
    return out


@streaming(vol_of_vol)
class _VolOfVolStream(GroupStream):
    """SMA of r^2 for the per-bar vol; VAR and SMA handles on that vol per window."""

    @classmethod
    def converge(cls, vol_window, windows) -> int:
        return vol_window + max_of(windows) + 1

    def warm(self, h) -> None:
        r2 = _log_returns(h["close"]) ** 2
        self.vol = _Sma(r2, self.p["vol_window"])
        vol = _sqrt(sma(r2, self.p["vol_window"]))
        self.ta = {n: (_SampleVar(vol, n), _Sma(vol, n)) for n in self.p["windows"]}

    def step(self, b) -> dict[str, float]:
        r2 = (np.array([b.r1]) ** 2)[0]
        vol = _sqrt(np.array([self.vol.update(r2)]))[0]
        out = {}
        for n, (var, mean) in self.ta.items():
            if vol != vol:  # the per-bar vol's own warm-up (leading NaNs are not history)
                std = mean_ = np.nan
            else:
                std, mean_ = _sqrt(np.array([var.update(vol)]))[0], mean.update(vol)
            cv = np.nan if std != std or mean_ != mean_ else (
                std / mean_ if mean_ >= _TINY_VOL else 0.0)
            out[f"volvol_{self.p['vol_window']}_{n}"] = cv
        return out


@register(warmup=lambda period, short, long: max(period, short, long), category="volatility")
def range_atr(bars: pd.DataFrame, period: int = 14, short: int = 5, long: int = 50) -> Columns:
    """Bar range in ATR units and the short/long ATR ratio (a volatility-regime gauge)."""
    _, h, lo, c = _ohlc(bars)
    atr = talib.ATR(h, lo, c, timeperiod=period)
    atr_s, atr_l = talib.ATR(h, lo, c, timeperiod=short), talib.ATR(h, lo, c, timeperiod=long)
    return {f"range_atr_{period}": _ratio(h - lo, atr),
            f"atr_ratio_{short}_{long}": _ratio(atr_s, atr_l)}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, 1 where ``den == 0``, NaN where either is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den == 0, 1.0, num / den)
    out[np.isnan(num) | np.isnan(den)] = np.nan
    return out


@streaming(range_atr)
class _RangeAtrStream(GroupStream):
    @classmethod
    def converge(cls, period, short, long) -> int:
        return wilder(max(period, short, long))

    def warm(self, h) -> None:
        args = (h["high"], h["low"], h["close"])
        self.atr = {n: TA("ATR", *args, timeperiod=n) for n in
                    (self.p["period"], self.p["short"], self.p["long"])}

    def step(self, b) -> dict[str, float]:
        p = self.p
        atr = {n: np.array([ta.update(b.high, b.low, b.close)]) for n, ta in self.atr.items()}
        hl = np.array([b.high - b.low])
        return {f"range_atr_{p['period']}": _ratio(hl, atr[p["period"]])[0],
                f"atr_ratio_{p['short']}_{p['long']}": _ratio(atr[p["short"]], atr[p["long"]])[0]}
