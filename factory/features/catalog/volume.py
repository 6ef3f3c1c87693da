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
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import TA, GroupStream, PandasRolling, wilder
from factory.features.streaming_kernels import kahan_cumsum_step

RATIO_FLOOR = 1e-3


def _col(bars, key: str) -> np.ndarray:
    return np.asarray(bars[key], np.float64)


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


def _one(x: float) -> np.ndarray:
    return np.array([x], np.float64)


@streaming(obv)
class _ObvStream(GroupStream):
    """pandas' rolling sums of the signed volume and of the volume (from bar 1)."""

    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows) + 1

    def warm(self, h) -> None:
        close, volume = h["close"], h["volume"]
        signed = np.full_like(volume, np.nan)
        signed[1:] = np.sign(np.diff(close)) * volume[1:]
        vol_from_1 = volume.copy()
        vol_from_1[:1] = np.nan
        self.sums = {w: (PandasRolling("sum", w), PandasRolling("sum", w))
                     for w in self.p["windows"]}
        for num, den in self.sums.values():
            num.warm(signed)
            den.warm(vol_from_1)

    def step(self, b) -> dict[str, float]:
        first = b.n == 0
        signed = np.nan if first else np.sign(b.close - b.prev("close")) * b.volume
        vol = np.nan if first else b.volume
        return {f"obv_{w}": _safe_ratio(_one(num.push(signed)), _one(den.push(vol)), 0.0)[0]
                for w, (num, den) in self.sums.items()}


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


@streaming(volume_percentile)
class _VolumePercentileStream(GroupStream):
    """:func:`trailing_percentile` on the window of the last ``w`` volumes."""

    @classmethod
    def lookback(cls, windows) -> int:
        return max_of(windows)

    def step(self, b) -> dict[str, float]:
        out = {}
        for w in self.p["windows"]:
            window = b.last("volume", w)
            value = trailing_percentile(window, w)[-1] if len(window) == w or w < 2 else np.nan
            out[f"vpct_{w}"] = value
        return out


def _typical_price(bars) -> np.ndarray:
    """``(high + low + close) / 3`` (``bars``: a frame or a mapping of arrays)."""
    return (_col(bars, "high") + _col(bars, "low") + _col(bars, "close")) / 3.0


def _bar(b) -> dict[str, np.ndarray]:
    """A streamed bar's OHLCV as one-value arrays (for the batch helpers)."""
    return {k: b.last(k, 1) for k in ("open", "high", "low", "close", "volume")}


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


@streaming(session_vwap)
class _SessionVwapStream(GroupStream):
    """pandas' per-session Kahan cumulative sums, reset at each session start."""

    @classmethod
    def converge(cls, session_gap_minutes) -> None:
        return None  # anchored at the session's first bar

    def warm(self, h) -> None:
        starts = h.starts(self.p["session_gap_minutes"])
        first = int(np.flatnonzero(starts)[-1]) if len(h) else 0
        self.pv, self.v = np.zeros(2), np.zeros(2)
        pv = _typical_price(h) * h["volume"]
        for i in range(first, len(h)):  # the current session only
            kahan_cumsum_step(pv[i], self.pv)
            kahan_cumsum_step(h["volume"][i], self.v)

    def step(self, b) -> dict[str, float]:
        start, _ = b.session(self.p["session_gap_minutes"])
        if start:
            self.pv[:], self.v[:] = 0.0, 0.0
        bar = _bar(b)
        pv = kahan_cumsum_step((_typical_price(bar) * bar["volume"])[0], self.pv)
        cum_v = kahan_cumsum_step(b.volume, self.v)
        return {"vwap_sess_dist": _vwap_distance(bar["close"], _one(pv), _one(cum_v))[0]}


@register(warmup=lambda windows: max_of(windows) - 1, category="volume")
def rolling_vwap(bars: pd.DataFrame, windows: Sequence[int] = (20, 60)) -> Columns:
    """Relative distance of the close to the VWAP of the trailing window."""
    volume, close = _col(bars, "volume"), _col(bars, "close")
    pv = _typical_price(bars) * volume
    return {f"vwap_dist_{w}": _vwap_distance(close, _rolling_sum(pv, w), _rolling_sum(volume, w))
            for w in windows}


@streaming(rolling_vwap)
class _RollingVwapStream(GroupStream):
    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows)

    def warm(self, h) -> None:
        pv = _typical_price(h) * h["volume"]
        self.sums = {w: (PandasRolling("sum", w), PandasRolling("sum", w))
                     for w in self.p["windows"]}
        for num, den in self.sums.values():
            num.warm(pv)
            den.warm(h["volume"])

    def step(self, b) -> dict[str, float]:
        bar = _bar(b)
        pv = (_typical_price(bar) * bar["volume"])[0]
        return {f"vwap_dist_{w}": _vwap_distance(bar["close"], _one(num.push(pv)),
                                                 _one(den.push(b.volume)))[0]
                for w, (num, den) in self.sums.items()}


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


@streaming(mfi)
class _MfiStream(GroupStream):
    """MFI handles and pandas' rolling sum of the volume that moved the typical price."""

    @classmethod
    def converge(cls, periods) -> int:
        return max(wilder(p) for p in periods)

    def warm(self, h) -> None:
        tp = _typical_price(h)
        moved = np.full_like(h["volume"], np.nan)
        moved[1:] = (tp[1:] != tp[:-1]) * h["volume"][1:]
        args = (h["high"], h["low"], h["close"], h["volume"])
        self.tp = tp[-1] if len(h) else np.nan
        self.ta = {p: (TA("MFI", *args, timeperiod=p), PandasRolling("sum", p))
                   for p in self.p["periods"]}
        for _, flow in self.ta.values():
            flow.warm(moved)

    def step(self, b) -> dict[str, float]:
        tp = _typical_price(_bar(b))
        moved = np.nan if b.n == 0 else ((tp != _one(self.tp)) * b.last("volume", 1))[0]
        self.tp = tp[0]
        out = {}
        for p, (ta, flow) in self.ta.items():
            value = ta.update(b.high, b.low, b.close, b.volume) / 100.0 - 0.5
            out[f"mfi_{p}"] = 0.0 if flow.push(moved) == 0 else value
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


@streaming(volume_ratio)
class _VolumeRatioStream(GroupStream):
    @classmethod
    def converge(cls, pairs) -> int:
        return max_of([long for _, long in pairs])

    def warm(self, h) -> None:
        self.pairs = {}
        for short, long in self.p["pairs"]:  # batch: one accumulator per pair member
            self.pairs[(short, long)] = (PandasRolling("mean", short),
                                         PandasRolling("mean", long))
            for roll in self.pairs[(short, long)]:
                roll.warm(h["volume"])

    def step(self, b) -> dict[str, float]:
        out = {}
        for (short, long), (roll_s, roll_l) in self.pairs.items():
            s, m = _one(roll_s.push(b.volume)), _one(roll_l.push(b.volume))
            ratio = np.maximum(_safe_ratio(s, m, 1.0), RATIO_FLOOR)
            out[f"vratio_{short}_{long}"] = np.log(ratio)[0]
        return out
