"""Microstructure estimators from bars: Amihud illiquidity, Roll spread, Kyle's lambda and the
Corwin-Schultz high-low spread.

``r_t = log(c_t / c_{t-1})``. Returns that span a session break (the first bar of a session,
:func:`temporal.session_starts`) are overnight jumps, not trading: Amihud, Roll and Kyle set
them to 0 (masked); Corwin-Schultz instead applies the paper's overnight adjustment.
Dollar volume is ``close * volume`` (price units x contracts; no point value).

Groups (warm-up = leading bars left undefined, as a function of the resolved params):

* ``amihud`` -> ``amihud_{w}``: ``log(mean_w(|r_t| / (c_t v_t)) + 1e-15)``, a zero-volume bar
  contributing 0 (no trade, no impact observation); the 1e-15 floor keeps a window without
  price changes finite. Amihud (2002). Warm-up: ``max(windows)``.
* ``roll_spread`` -> ``roll_{w}``: ``2 sqrt(-cov(dr_t, dr_{t-1}))`` when the sample
  covariance (ddof=1) of the ``w`` trailing pairs is negative, else 0 (Roll 1984; on log
  prices, so a relative spread). Warm-up: ``max(windows) + 1``.
* ``kyle_lambda`` -> ``kyle_{w}``: slope of the trailing regression of ``r_t`` on signed volume
  ``sign(r_t) v_t`` (``cov / var``, 0 when the signed volume does not vary), multiplied by the
  window's mean volume so it reads as return per average-bar volume and does not depend on the
  volume unit. Warm-up: ``max(windows)``.
* ``corwin_schultz`` -> ``cs_{w}``: trailing mean of the two-bar Corwin-Schultz (2012) spread
  ``S = 2 (e^a - 1) / (1 + e^a)``, ``a = (sqrt(2b) - sqrt(b)) / (3 - 2 sqrt 2)
  - sqrt(g / (3 - 2 sqrt 2))``, ``b = ln(H_t/L_t)^2 + ln(H_{t-1}/L_{t-1})^2``,
  ``g = ln(max(H_t, H_{t-1}) / min(L_t, L_{t-1}))^2``; bar t's high and low are first shifted
  by the gap to ``c_{t-1}`` when they lie wholly above or below it (overnight adjustment);
  negative estimates set to 0. Warm-up: ``max(windows)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from factory.features.catalog._common import max_of
from factory.features.catalog.temporal import (
    SESSION_GAP_MINUTES,
    log_price,
    mask_session_gaps,
    session_starts,
)
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import GroupStream, PandasRolling

AMIHUD_FLOOR = 1e-15
_K = 3.0 - 2.0 * np.sqrt(2.0)


def _log_returns(bars: pd.DataFrame, gap_minutes: float) -> np.ndarray:
    """One-bar log returns, NaN at bar 0 and 0 at session starts."""
    logc = log_price(bars["close"].to_numpy(np.float64))
    r = np.full_like(logc, np.nan)
    r[1:] = np.diff(logc)
    return mask_session_gaps(r, session_starts(bars.index, gap_minutes))


def _masked_returns(h, gap_minutes: float) -> np.ndarray:
    """:func:`_log_returns` of a streaming history (the same arithmetic)."""
    r = h["r1"].copy()  # log_price == log for the positive prices bars carry
    return mask_session_gaps(r, h.starts(gap_minutes))


def _amihud_bar(r: np.ndarray, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """|return| per unit of dollar volume (0 for a bar without volume)."""
    dollar = close * volume
    with np.errstate(invalid="ignore", divide="ignore"):
        illiq = np.where(dollar > 0, np.abs(r) / dollar, 0.0)
    illiq[np.isnan(r)] = np.nan
    return illiq


@register(warmup=lambda windows, session_gap_minutes: max_of(windows), category="microstructure")
def amihud(bars: pd.DataFrame, windows: Sequence[int] = (20, 60),
           session_gap_minutes: float = SESSION_GAP_MINUTES) -> Columns:
    """Amihud illiquidity: log of the trailing mean of |return| per unit of dollar volume."""
    r = _log_returns(bars, session_gap_minutes)
    illiq = _amihud_bar(r, bars["close"].to_numpy(np.float64), bars["volume"].to_numpy(np.float64))
    series = pd.Series(illiq)
    return {f"amihud_{w}": np.log(series.rolling(w, min_periods=w).mean().to_numpy()
                                  + AMIHUD_FLOOR) for w in windows}


@streaming(amihud)
class _AmihudStream(GroupStream):
    @classmethod
    def converge(cls, windows, session_gap_minutes) -> int:
        return max_of(windows) + 1

    def warm(self, h) -> None:
        r = _masked_returns(h, self.p["session_gap_minutes"])
        illiq = _amihud_bar(r, h["close"], h["volume"])
        self.means = {w: PandasRolling("mean", w) for w in self.p["windows"]}
        for roll in self.means.values():
            roll.warm(illiq)

    def step(self, b) -> dict[str, float]:
        r = np.array([b.masked_r(self.p["session_gap_minutes"])])
        illiq = _amihud_bar(r, b.last("close", 1), b.last("volume", 1))[0]
        return {f"amihud_{w}": np.log(roll.push(illiq) + AMIHUD_FLOOR)
                for w, roll in self.means.items()}


@register(warmup=lambda windows, session_gap_minutes: max_of(windows) + 1,
          category="microstructure")
def roll_spread(bars: pd.DataFrame, windows: Sequence[int] = (20, 60),
                session_gap_minutes: float = SESSION_GAP_MINUTES) -> Columns:
    """Roll's implied spread from the first-order autocovariance of log price changes."""
    r = pd.Series(_log_returns(bars, session_gap_minutes))
    lagged = r.shift(1)
    out = {}
    for w in windows:
        cov = r.rolling(w, min_periods=w).cov(lagged).to_numpy()
        spread = 2.0 * np.sqrt(np.maximum(-cov, 0.0))
        out[f"roll_{w}"] = spread
    return out


@streaming(roll_spread)
class _RollSpreadStream(GroupStream):
    """pandas' rolling covariance of the return with the previous return."""

    @classmethod
    def converge(cls, windows, session_gap_minutes) -> int:
        return max_of(windows) + 2

    def warm(self, h) -> None:
        r = _masked_returns(h, self.p["session_gap_minutes"])
        lagged = np.full_like(r, np.nan)
        lagged[1:] = r[:-1]
        self.prev = r[-1] if len(r) else np.nan
        self.covs = {w: PandasRolling("cov", w) for w in self.p["windows"]}
        for roll in self.covs.values():
            roll.warm(r, lagged)

    def step(self, b) -> dict[str, float]:
        r = b.masked_r(self.p["session_gap_minutes"])
        lagged, self.prev = self.prev, r
        return {f"roll_{w}": 2.0 * np.sqrt(np.maximum(-roll.push(r, lagged), 0.0))
                for w, roll in self.covs.items()}


@register(warmup=lambda windows, session_gap_minutes: max_of(windows), category="microstructure")
def kyle_lambda(bars: pd.DataFrame, windows: Sequence[int] = (20, 60),
                session_gap_minutes: float = SESSION_GAP_MINUTES) -> Columns:
    """Kyle's lambda: trailing OLS slope of return on signed volume, times mean volume."""
    r = _log_returns(bars, session_gap_minutes)
    volume = bars["volume"].to_numpy(np.float64)
    signed = np.sign(r) * volume
    rs, ss = pd.Series(r), pd.Series(signed)
    vol_from_1 = pd.Series(np.where(np.isnan(r), np.nan, volume))
    out = {}
    for w in windows:
        cov = rs.rolling(w, min_periods=w).cov(ss).to_numpy()
        var = ss.rolling(w, min_periods=w).var().to_numpy()
        mean_v = vol_from_1.rolling(w, min_periods=w).mean().to_numpy()
        out[f"kyle_{w}"] = _kyle(cov, var, mean_v)
    return out


def _kyle(cov: np.ndarray, var: np.ndarray, mean_v: np.ndarray) -> np.ndarray:
    """``cov / var * mean_v``; 0 where the signed volume "does not vary" (below round-off
    of its own scale), NaN where the variance is undefined."""
    flat = ~(var > 1e-12 * mean_v * mean_v)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(flat, 0.0, cov / var * mean_v)
    lam[np.isnan(var)] = np.nan
    return lam


@streaming(kyle_lambda)
class _KyleStream(GroupStream):
    """pandas' rolling cov(return, signed volume), var(signed volume) and mean volume."""

    @classmethod
    def converge(cls, windows, session_gap_minutes) -> int:
        return max_of(windows) + 1

    def warm(self, h) -> None:
        r = _masked_returns(h, self.p["session_gap_minutes"])
        volume = h["volume"]
        signed = np.sign(r) * volume
        vol_from_1 = np.where(np.isnan(r), np.nan, volume)
        self.rolls = {w: (PandasRolling("cov", w), PandasRolling("var", w),
                          PandasRolling("mean", w)) for w in self.p["windows"]}
        for cov, var, mean in self.rolls.values():
            cov.warm(r, signed)
            var.warm(signed)
            mean.warm(vol_from_1)

    def step(self, b) -> dict[str, float]:
        r = b.masked_r(self.p["session_gap_minutes"])
        signed = np.sign(r) * b.volume
        vol = np.nan if r != r else b.volume
        out = {}
        for w, (cov, var, mean) in self.rolls.items():
            values = [np.array([roll]) for roll in (cov.push(r, signed), var.push(signed),
                                                    mean.push(vol))]
            out[f"kyle_{w}"] = _kyle(*values)[0]
        return out


def corwin_schultz_spread(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Two-bar Corwin-Schultz spread estimate per bar (NaN at bar 0, negatives set to 0)."""
    out = np.full(high.size, np.nan)
    if high.size < 2:
        return out
    h0, l0, c0 = high[:-1], low[:-1], close[:-1]
    shift = np.maximum(low[1:] - c0, 0.0) - np.maximum(c0 - high[1:], 0.0)
    h1, l1 = high[1:] - shift, low[1:] - shift
    lh0, ll0, lh1, ll1 = (log_price(x) for x in (h0, l0, h1, l1))
    beta = (lh1 - ll1) ** 2 + (lh0 - ll0) ** 2
    gamma = (np.maximum(lh0, lh1) - np.minimum(ll0, ll1)) ** 2
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _K - np.sqrt(gamma / _K)
    ea = np.exp(alpha)
    out[1:] = np.maximum(2.0 * (ea - 1.0) / (1.0 + ea), 0.0)
    return out


@register(warmup=lambda windows: max_of(windows), category="microstructure")
def corwin_schultz(bars: pd.DataFrame, windows: Sequence[int] = (20, 60)) -> Columns:
    """Trailing mean of the two-bar Corwin-Schultz high-low spread estimator."""
    spread = pd.Series(corwin_schultz_spread(*(bars[k].to_numpy(np.float64)
                                               for k in ("high", "low", "close"))))
    return {f"cs_{w}": spread.rolling(w, min_periods=w).mean().to_numpy() for w in windows}


@streaming(corwin_schultz)
class _CorwinSchultzStream(GroupStream):
    """The two-bar spread of the last two bars, and pandas' rolling mean of it."""

    @classmethod
    def converge(cls, windows) -> int:
        return max_of(windows) + 1

    def warm(self, h) -> None:
        spread = corwin_schultz_spread(h["high"], h["low"], h["close"])
        self.means = {w: PandasRolling("mean", w) for w in self.p["windows"]}
        for roll in self.means.values():
            roll.warm(spread)

    def step(self, b) -> dict[str, float]:
        spread = corwin_schultz_spread(*(b.last(k, 2) for k in ("high", "low", "close")))[-1]
        return {f"cs_{w}": roll.push(spread) for w, roll in self.means.items()}
