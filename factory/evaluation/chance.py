"""Is a model's out-of-sample score distinguishable from chance? (the leakage canary's test)

Three figures, each with the standard error that fits its dependence structure:

* **accuracy vs the majority-class rate.** Triple-barrier labels of neighbouring bars share
  most of their future path, so they are far from independent: the standard error uses the
  effective number of labels ``n_eff = sum of average uniqueness`` (López de Prado, ch. 4:
  a label spanning bars shared with c others counts 1/c per bar), ``se = sqrt(p (1-p) /
  n_eff)``. Accuracy can legitimately beat the majority rate without any leak: whether a
  barrier is touched at all depends on future volatility, which is predictable. On the
  canary's 21 days it stays within 3 SE; on 90 days of the same random walk a booster beats
  it by 3.1 SE while its direction and gross Sharpe stay at chance, so the two checks below
  are the ones that scale.
* **directional hit rate.** Among rows where both the prediction and the label are -1 or
  +1, the share that agree, against the rate expected if predicted and true signs were
  independent (``q+ p+ + q- p-`` from their shares on those rows); ``se`` from their
  effective number. On a driftless walk no information reaches the sign.
* **gross Sharpe vs 0.** The model's trades before costs through the backtest; its bar
  returns are martingale differences on a driftless walk, so Lo's i.i.d. standard error
  holds (:func:`~factory.evaluation.label_report.sharpe_standard_error`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factory.dataset import PROBA_COLUMNS, Dataset
from factory.evaluation.label_report import gross_metrics
from factory.labeling.weights import average_uniqueness


def effective_count(pred: pd.DataFrame, ds: Dataset, mask: np.ndarray | None = None) -> float:
    """Sum of the average uniqueness of ``pred``'s labels (restricted to ``mask``), per symbol
    among the rows counted."""
    keep = np.ones(len(pred), bool) if mask is None else np.asarray(mask, bool)
    total = 0.0
    for sym, rows in pred[keep].groupby("symbol").indices.items():
        sub = pred[keep].iloc[rows]
        total += float(average_uniqueness(sub["bar_idx"].to_numpy() + 1,
                                          sub["exit_idx"].to_numpy(), len(ds.bars[sym])).sum())
    return total


def chance_figures(pred: pd.DataFrame, ds: Dataset, threshold: float) -> dict:
    """The three figures of the module docstring for one prediction frame."""
    y = pred["label"].to_numpy()
    guess = pred[PROBA_COLUMNS].to_numpy().argmax(axis=1) - 1
    majority = float(max(np.mean(y == k) for k in (-1, 0, 1)))
    n_eff = effective_count(pred, ds)
    both = (y != 0) & (guess != 0)
    q_long, p_long = np.mean(guess[both] == 1), np.mean(y[both] == 1)
    expected = float(q_long * p_long + (1 - q_long) * (1 - p_long)) if both.any() else 0.5
    n_dir = effective_count(pred, ds, both) if both.any() else 0.0
    gross = gross_metrics(pred, ds, threshold)
    return {
        "n": int(len(y)), "n_eff": n_eff,
        "accuracy": float(np.mean(guess == y)), "majority": majority,
        "accuracy_se": float(np.sqrt(majority * (1 - majority) / max(n_eff, 1.0))),
        "directional": float(np.mean(y[both] == guess[both])) if both.any() else 0.5,
        "directional_expected": expected, "n_directional": int(both.sum()),
        "directional_se": float(np.sqrt(expected * (1 - expected) / max(n_dir, 1.0))),
        "gross_sharpe": gross["gross_sharpe"], "gross_sharpe_se": gross["gross_sharpe_se"],
    }


def at_chance(fig: dict, k: float = 3.0) -> dict[str, bool]:
    """Which of the three figures lie within ``k`` standard errors of chance."""
    return {
        "accuracy": abs(fig["accuracy"] - fig["majority"]) <= k * fig["accuracy_se"],
        "directional": abs(fig["directional"] - fig["directional_expected"])
        <= k * fig["directional_se"],
        "gross_sharpe": abs(fig["gross_sharpe"]) <= k * fig["gross_sharpe_se"],
    }
