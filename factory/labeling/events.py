"""Event sampling: which bars get a label (López de Prado, *Advances in Financial ML*, 2.5.2).

* ``all``: every bar is an event (a label per bar, heavily overlapping).
* ``cusum``: the symmetric CUSUM filter on log closes. With ``r_t`` the 1-bar log return,

      s+_t = max(0, s+_{t-1} + r_t)        s-_t = min(0, s-_{t-1} + r_t)

  and a threshold ``h_t = threshold x sigma_t`` (sigma the causal EWMA one-bar volatility of
  :func:`factory.labeling.widths.ewma_vol`), bar t is an event when ``s+_t > h_t`` or
  ``s-_t < -h_t``; the sum that fired restarts from 0. An event marks a bar whose close ends
  a run of returns large against the current volatility. Every quantity at t reads closes
  up to t only, so sampling never looks ahead (tests/test_cusum_events.py truncates the bars
  and changes the future). Bars before the volatility warm-up are never events.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from factory.errors import FactoryError
from factory.labeling.widths import ewma_vol

EVENT_KINDS = ("all", "cusum")


def check_events(kind: str, threshold: float) -> None:
    """FactoryError naming the key for unusable event settings."""
    if kind not in EVENT_KINDS:
        raise FactoryError(f"`labeling.events` must be one of {', '.join(EVENT_KINDS)}, got "
                           f"{kind!r} (try `labeling.events=cusum`)")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not threshold > 0:
        raise FactoryError(f"`labeling.cusum_threshold` must be a number > 0, got {threshold!r} "
                           "(try `labeling.cusum_threshold=3.0`)")


@njit(cache=True)
def _cusum(r: np.ndarray, h: np.ndarray) -> np.ndarray:  # pragma: no cover (compiled)
    out = np.zeros(len(r), np.bool_)
    s_pos, s_neg = 0.0, 0.0
    for t in range(len(r)):
        if not (h[t] > 0.0):  # warm-up (NaN) or a flat stretch: no threshold, no event
            continue
        s_pos = max(0.0, s_pos + r[t])
        s_neg = min(0.0, s_neg + r[t])
        if s_pos > h[t]:
            s_pos = 0.0
            out[t] = True
        elif s_neg < -h[t]:
            s_neg = 0.0
            out[t] = True
    return out


def cusum_events(close: np.ndarray, threshold: float, vol_span: int) -> np.ndarray:
    """Boolean mask of CUSUM events over ``close`` (see the module docstring)."""
    c = np.asarray(close, np.float64)
    r = np.zeros(len(c))
    if len(c) > 1:
        r[1:] = np.diff(np.log(c))
    return _cusum(r, float(threshold) * ewma_vol(c, vol_span))


def event_mask(close: np.ndarray, kind: str, threshold: float, vol_span: int) -> np.ndarray:
    """Events of ``labeling.events`` for one symbol's closes."""
    check_events(kind, threshold)
    if kind == "all":
        return np.ones(len(close), bool)
    return cusum_events(close, threshold, vol_span)
