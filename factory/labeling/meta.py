"""Meta-labels: given a primary model's side, is taking that trade worth it? (Lopez de Prado 3.6)

A primary model decides the *side* of each bar's trade (+1 long, -1 short, 0 no trade). The
meta-label asks the second question, whether to act on it: 1 when the trade in that side,
entered at the next bar's open and exited where the triple barrier exits (first touch,
gapped open, ambiguous stop, or the vertical barrier; see ``triple_barrier.py``), clears its
round-trip cost; 0 otherwise. Rows with side 0 have no trade to judge and are excluded (NaN
here; the labeler sets their ``exit_idx`` to -1, which Phase 1 drops). A secondary model fit
on these binary labels sizes or filters the primary's bets, so the primary can aim for
recall and the secondary for precision.

The meta-label uses the trade's own net return, whichever barrier ended it, so
``labeling.vertical`` does not apply: a trade that drifted to a profit by the vertical
barrier was still worth taking.

How it plugs in: the side must be known at the decision bar's close. The real primary side
will be a model's out-of-fold predictions (the CV issue): pass them to :func:`meta_labels`
with the labeler's ``ret_long`` / ``ret_short`` / ``cost`` columns. Until then
``labeling.meta: {side_from: momentum, lookback: 20}`` uses :func:`momentum_side` (sign of
the ``lookback``-bar return known at bar t) so meta-labeling runs end to end.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from factory.errors import FactoryError

SIDE_SOURCES = ("momentum",)


def momentum_side(close: np.ndarray, lookback: int) -> np.ndarray:
    """sign(close_t - close_{t-lookback}) per bar (int8); 0 for the first ``lookback`` bars.

    Uses closes up to and including bar t only: the decision is taken at bar t's close.
    """
    close = np.asarray(close, np.float64)
    side = np.zeros(len(close), np.int8)
    if lookback < len(close):
        side[lookback:] = np.sign(close[lookback:] - close[:-lookback])
    return side


def meta_labels(
    side: np.ndarray, ret_long: np.ndarray, ret_short: np.ndarray, cost: np.ndarray
) -> np.ndarray:
    """1.0 when taking ``side`` clears its cost, 0.0 when not, NaN for side 0 / no label."""
    side = np.asarray(side)
    if not np.isin(side, (-1, 0, 1)).all():
        raise FactoryError("meta-labeling: the primary side must be -1, 0 or +1 per bar "
                           "(pass np.sign of the primary model's signal)")
    ret = np.where(side > 0, ret_long, ret_short)
    out = (ret - np.asarray(cost) > 0).astype(np.float64)
    out[(side == 0) | np.isnan(ret)] = np.nan
    return out


def check_meta(meta: Mapping | None) -> dict | None:
    """Validated ``labeling.meta`` (None = plain triple-barrier labels)."""
    if meta is None:
        return None
    spec = dict(meta)
    extra = set(spec) - {"side_from", "lookback"}
    source = spec.get("side_from", "momentum")
    lookback = spec.get("lookback", 20)
    if extra or source not in SIDE_SOURCES:
        raise FactoryError(
            f"`labeling.meta` must be null or {{side_from: momentum, lookback: N}}, got "
            f"{spec!r} (try `labeling.meta={{side_from:momentum,lookback:20}}`)"
        )
    if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback <= 0:
        raise FactoryError(
            f"`labeling.meta.lookback` must be a positive int, got {lookback!r} "
            "(try `labeling.meta.lookback=20`)"
        )
    return {"side_from": source, "lookback": lookback}


def primary_side(close: np.ndarray, meta: Mapping) -> np.ndarray:
    """The configured rule-based primary side (``labeling.meta.side_from``)."""
    return momentum_side(close, int(meta["lookback"]))
