"""Calibration of class probabilities: reliability table, ECE, Brier score; trade returns.

* **Reliability table**: rows grouped by the confidence of the predicted class (its
  probability) into ``n_bins`` equal-width bins on [0, 1]; per bin the row count, mean
  confidence and accuracy (share whose outcome is the predicted class).
* **ECE** (expected calibration error): ``sum_b n_b / N * |accuracy_b - confidence_b|``.
* **Brier score** (multi-class): ``mean_i sum_k (p_ik - [y_i = k])^2``; 0 is perfect, a
  uniform 1/3 forecast scores 2/3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = np.array([-1, 0, 1])


def reliability(proba: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """The reliability table of the predicted class (see the module docstring)."""
    proba = np.asarray(proba, np.float64)
    conf = proba.max(axis=1)
    hit = CLASSES[proba.argmax(axis=1)] == np.asarray(outcome)
    b = np.clip((conf * n_bins).astype(int), 0, n_bins - 1)
    rows = []
    for k in range(n_bins):
        sel = b == k
        if sel.any():
            rows.append({"bin": f"{k / n_bins:.1f}-{(k + 1) / n_bins:.1f}", "rows": int(sel.sum()),
                         "confidence": float(conf[sel].mean()),
                         "accuracy": float(hit[sel].mean())})
    return pd.DataFrame(rows, columns=["bin", "rows", "confidence", "accuracy"])


def ece(table: pd.DataFrame) -> float:
    n = table["rows"].sum()
    if n == 0:
        return float("nan")
    gap = (table["accuracy"] - table["confidence"]).abs()
    return float((table["rows"] * gap).sum() / n)


def brier(proba: np.ndarray, outcome: np.ndarray) -> float:
    onehot = (np.asarray(outcome)[:, None] == CLASSES[None, :]).astype(np.float64)
    return float(np.mean(np.sum((np.asarray(proba, np.float64) - onehot) ** 2, axis=1)))


def trade_returns(side: np.ndarray, ret_long: np.ndarray, ret_short: np.ndarray,
                  cost: np.ndarray) -> np.ndarray:
    """Net return of each row's action (side -1/0/+1) on its realised label returns."""
    side = np.asarray(side)
    gross = np.where(side > 0, ret_long, np.where(side < 0, ret_short, 0.0))
    return np.where(side != 0, gross - cost, np.nan)


def summary(proba: np.ndarray, outcome: np.ndarray, side: np.ndarray | None = None,
            ret_long=None, ret_short=None, cost=None, n_bins: int = 10) -> dict:
    """Accuracy, Brier, ECE and (with the action and returns) the per-trade return figures."""
    proba = np.asarray(proba, np.float64)
    outcome = np.asarray(outcome)
    table = reliability(proba, outcome, n_bins)
    out = {"rows": int(len(outcome)),
           "accuracy": float(np.mean(CLASSES[proba.argmax(axis=1)] == outcome))
           if len(outcome) else float("nan"),
           "brier": brier(proba, outcome) if len(outcome) else float("nan"),
           "ece": ece(table)}
    if side is not None:
        r = trade_returns(side, ret_long, ret_short, cost)
        r = r[np.isfinite(r)]
        std = r.std(ddof=1) if len(r) > 1 else float("nan")
        out.update({"trades": int(len(r)),
                    "trade_mean": float(r.mean()) if len(r) else float("nan"),
                    "trade_sharpe": float(r.mean() / std) if len(r) > 1 and std > 0
                    else float("nan")})
    return out
