"""Barrier widths: how far the triple barrier sits from the entry, in price points.

A width at bar t is ``multiplier x unit_t``, where the unit is known at bar t's close
(causal) and depends on ``labeling.width``:

* ``vol`` (default): ``close_t x sigma_t x sqrt(horizon)``. ``sigma_t`` is a one-bar
  volatility estimate: the square root of an exponentially weighted mean of squared 1-bar log
  returns (span ``vol_span`` bars; zero mean, as RiskMetrics and López de Prado's daily
  volatility). A random walk moves about ``sigma x sqrt(h)`` in ``h`` bars, so the barriers
  widen with the horizon and the label of ``horizon=20`` is a different target from that of
  ``horizon=5``: the vertical barrier is reached in a stable share of labels whatever the
  horizon, and holding periods grow with it.
* ``atr_sqrt``: ``ATR_t x sqrt(horizon)`` (Wilder ATR, ``atr_period``). A bar's true range
  is about 1.6 one-bar standard deviations, so at the same multipliers these barriers sit
  about 1.6 times further out than ``vol``'s.
* ``atr``: ``ATR_t`` whatever the horizon (wave 1's labels: most labels of every horizon end
  at a horizontal barrier within a few bars).

The first ``warmup(kind, ...)`` bars have no width (NaN) and so no label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from factory.errors import FactoryError

WIDTH_KINDS = ("vol", "atr_sqrt", "atr")


def check_width(kind: str, atr_period: int, vol_span: int) -> None:
    """FactoryError naming the key when the width settings are unusable."""
    if kind not in WIDTH_KINDS:
        raise FactoryError(f"`labeling.width` must be one of {', '.join(WIDTH_KINDS)}, got "
                           f"{kind!r} (try `labeling.width=vol`; `labeling.width=atr` gives "
                           "the horizon-blind ATR barriers of wave 1)")
    for key, val in (("atr_period", atr_period), ("vol_span", vol_span)):
        if isinstance(val, bool) or not isinstance(val, int | np.integer) or val < 2:
            raise FactoryError(f"`labeling.{key}` must be an int >= 2, got {val!r}")


def warmup(kind: str, atr_period: int, vol_span: int) -> int:
    """Leading bars without a width."""
    return int(vol_span) if kind == "vol" else int(atr_period)


def ewma_vol(close: np.ndarray, span: int) -> np.ndarray:
    """sqrt(EWMA of squared 1-bar log returns), alpha = 2 / (span + 1); NaN for t < span.

    ``v_t = (1 - alpha) v_{t-1} + alpha r_t^2`` from ``v_1 = r_1^2``: each value reads
    closes up to t only.
    """
    c = np.asarray(close, np.float64)
    out = np.full(len(c), np.nan)
    if len(c) <= span:
        return out
    r2 = np.diff(np.log(c)) ** 2
    v = pd.Series(r2).ewm(span=span, adjust=False).mean().to_numpy()
    out[1:] = np.sqrt(v)
    out[:span] = np.nan
    return out


def unit_width(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
               kind: str, horizon: int, atr_period: int = 14, vol_span: int = 100
               ) -> np.ndarray:
    """Width of one multiplier unit at each bar, in price points (NaN during the warm-up)."""
    check_width(kind, atr_period, vol_span)
    if kind == "vol":
        return np.asarray(close, np.float64) * ewma_vol(close, vol_span) * np.sqrt(horizon)
    atr = talib.ATR(np.asarray(high, np.float64), np.asarray(low, np.float64),
                    np.asarray(close, np.float64), timeperiod=atr_period)
    return atr * np.sqrt(horizon) if kind == "atr_sqrt" else atr
