"""What the engine trades on: per-bar decisions from probabilities or signals, and bet sizes.

A *decision frame* per symbol is indexed by the bar stamps it decides at (any subset of the
symbol's bars; a bar without a row, or with NaN probabilities, makes no decision) with:

* ``p_short, p_flat, p_long`` (class probabilities; an optional ``side`` column holds the
  primary side under meta-labels), or ``signal`` (-1 / 0 / +1; an optional ``p`` column is the
  winning probability, for probability sizing);
* ``weight`` (``sim.sizing=weight``): a portfolio's notional weight, a fraction of equity;
* the label geometry, needed by barrier exits: ``width_up`` / ``width_dn`` in price points,
  or ``barrier_up`` / ``barrier_dn`` as returns on the decision bar's close (the Dataset's
  meta columns), converted with that close.

The side follows the research backtest's rule exactly (``factory/evaluation/backtest.py``):
``argmax - 1`` when the winning probability is at least ``threshold`` (ties go to the lower
class); under meta-labels class +1 means "take the primary side".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from factory.errors import FactoryError

PROBA = ["p_short", "p_flat", "p_long"]


def side_from_proba(proba: np.ndarray, threshold: float,
                    primary_side: np.ndarray | None = None) -> np.ndarray:
    """-1 / 0 / +1 per row: the backtest's threshold rule (see the module docstring)."""
    best = proba.argmax(axis=1)
    side = np.where(proba.max(axis=1) >= threshold, best - 1, 0)
    if primary_side is not None:
        side = np.where(side == 1, primary_side, 0)
    return side.astype(np.int8)


def bet_size(p: np.ndarray, n_classes: int = 3, step: float = 0.0) -> np.ndarray:
    """Bet size in [0, 1] from the winning class probability (López de Prado, AFML ch. 10).

    ``z = (p - 1/K) / sqrt(p (1 - p))`` is the one-vs-rest test statistic of the prediction,
    ``m = 2 Phi(z) - 1`` its size; ``step > 0`` discretises ``m`` to multiples of ``step``
    (snippet 10.3), which keeps the position from jittering on tiny probability changes.
    """
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p - 1.0 / n_classes) / np.sqrt(p * (1.0 - p))
    m = np.clip(2.0 * ndtr(np.nan_to_num(z, nan=0.0, posinf=np.inf)) - 1.0, 0.0, 1.0)
    if step > 0:
        m = np.clip(np.round(m / step) * step, 0.0, 1.0)
    return m


@dataclass
class Aligned:
    """One symbol's decisions on its bars (arrays as long as the bars)."""

    valid: np.ndarray   # bool: a decision is taken at this bar's close
    side: np.ndarray    # int8 -1 / 0 / +1
    bet: np.ndarray     # float64 in [0, 1]: probability bet size (1 without probabilities)
    width_up: np.ndarray  # float64 price points (NaN without geometry)
    width_dn: np.ndarray
    weight: np.ndarray | None = None  # float64 notional weights (``weight`` sizing), NaN: none


def align(symbol: str, bars: pd.DataFrame, frame: pd.DataFrame | None, threshold: float,
          step: float, need_widths: bool, need_bet: bool = True,
          need_weight: bool = False) -> Aligned:
    """Decisions of one symbol on its bars; FactoryError naming the column or stamp.

    ``need_bet=False`` skips the bet sizes (left at 1) when the sizing does not use them;
    ``need_weight`` reads the ``weight`` column (``weight`` sizing)."""
    n = len(bars)
    out = Aligned(np.zeros(n, bool), np.zeros(n, np.int8), np.ones(n), np.full(n, np.nan),
                  np.full(n, np.nan), np.full(n, np.nan) if need_weight else None)
    if frame is None or len(frame) == 0:
        return out
    if need_weight and "weight" not in frame.columns:
        raise FactoryError(f"decisions for {symbol}: `sim.sizing=weight` needs a `weight` "
                           "column (notional / equity per decision, e.g. from task=portfolio)")
    same = frame.index.equals(bars.index)
    pos = np.arange(n) if same else bars.index.get_indexer(frame.index)
    if not same and (pos < 0).any():
        bad = frame.index[np.flatnonzero(pos < 0)[0]]
        raise FactoryError(f"decisions for {symbol}: stamp {bad} is not a bar of {symbol} "
                           "(decisions must be indexed by the bars' open stamps)")
    if set(PROBA) <= set(frame.columns):
        proba = frame[PROBA].to_numpy(np.float64)
        ok = np.isfinite(proba).all(axis=1)
        primary = frame["side"].to_numpy() if "side" in frame else None
        side = side_from_proba(np.nan_to_num(proba), threshold, primary)
        p = proba.max(axis=1)
    elif "signal" in frame.columns:
        sig = frame["signal"].to_numpy(np.float64)
        ok = np.isfinite(sig)
        if not np.isin(sig[ok], (-1.0, 0.0, 1.0)).all():
            raise FactoryError(f"decisions for {symbol}: `signal` must be -1, 0 or +1, got "
                               f"{sorted(set(sig[ok]) - {-1.0, 0.0, 1.0})[:3]}")
        side = np.nan_to_num(sig).astype(np.int8)
        p = frame["p"].to_numpy(np.float64) if "p" in frame else np.full(len(frame), np.nan)
    else:
        raise FactoryError(f"decisions for {symbol}: need columns {PROBA} or `signal`, got "
                           f"{list(frame.columns)}")
    close = bars["close"].to_numpy(np.float64)[pos]
    if {"width_up", "width_dn"} <= set(frame.columns):
        wu, wd = frame["width_up"].to_numpy(np.float64), frame["width_dn"].to_numpy(np.float64)
    elif {"barrier_up", "barrier_dn"} <= set(frame.columns):
        wu = frame["barrier_up"].to_numpy(np.float64) * close
        wd = frame["barrier_dn"].to_numpy(np.float64) * close
    elif need_widths:
        raise FactoryError(f"decisions for {symbol}: `sim.exit=barrier` needs the label "
                           "geometry: columns width_up/width_dn (points) or barrier_up/"
                           "barrier_dn (returns on the close); or use `sim.exit=signal`")
    else:
        wu = wd = np.full(len(frame), np.nan)
    if need_widths:
        ok &= np.isfinite(wu) & np.isfinite(wd)
    out.valid[pos] = ok
    out.side[pos] = np.where(ok, side, 0)
    if need_bet:
        out.bet[pos] = np.where(np.isfinite(p), bet_size(p, 3, step), 1.0)
    out.width_up[pos], out.width_dn[pos] = wu, wd
    if need_weight:
        out.weight[pos] = frame["weight"].to_numpy(np.float64)
    return out


def from_predictions(pred: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a prediction frame (``timestamp, symbol, ...``, the trainer's layout) into
    per-symbol decision frames indexed by bar stamp."""
    if not {"timestamp", "symbol"} <= set(pred.columns):
        raise FactoryError(f"prediction frame needs `timestamp` and `symbol` columns, got "
                           f"{list(pred.columns)[:8]}")
    return {str(sym): sub.set_index("timestamp").sort_index()
            for sym, sub in pred.groupby("symbol", sort=True)}
