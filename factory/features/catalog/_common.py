"""Small numeric helpers shared by the catalog modules (no feature groups here).

Every helper is causal: a value at bar t reads inputs at bars <= t only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib


def max_of(values) -> int:
    return int(max(values)) if len(values) else 0


def hlc(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(bars[k].to_numpy(np.float64) for k in ("high", "low", "close"))


def safe_div(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """``num / den`` with ``fill`` where ``den == 0``; NaN wherever an input is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den == 0, fill, num / den)
    out[np.isnan(num) | np.isnan(den)] = np.nan
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Trailing n-bar mean (TA-Lib; its wrapper skips leading NaNs). n = 1 is the identity."""
    return x.copy() if n == 1 else talib.SMA(x, timeperiod=n)


def highest_lowest(h: np.ndarray, lo: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Highest high and lowest low of the last n bars, the current bar included."""
    if n == 1:
        return h.copy(), lo.copy()
    return talib.MAX(h, timeperiod=n), talib.MIN(lo, timeperiod=n)
