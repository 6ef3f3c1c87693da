"""Classification metrics, the Sharpe ratio's standard error, and what makes a figure
untrustworthy: too few trades or rows, no trade at all, one class in the training labels.

* :func:`classification_metrics`: accuracy, balanced accuracy, macro F1, log loss and
  per-direction precision on class probabilities (fixed class order -1, 0, 1).
* :func:`sharpe_standard_error`: Lo (2002). Without returns, the i.i.d. formula; with the
  per-bar returns, the GMM form of Lo's section 3 for serially correlated returns (Newey-West
  weights), which is what marked-to-market bars of multi-bar trades need.
* :func:`small_sample_marks`: the metrics of a split with fewer trades than
  ``evaluation.min_trades`` or fewer rows than ``evaluation.min_rows``, each with its reason,
  for ``metrics.json`` (``marks``), the summary table (``*``) and a warning.
* :func:`no_trade_reason`: why a split has no trade (e.g. no probability reached
  ``evaluation.threshold``, with the largest seen).
* :func:`label_balance_problem`: training labels with one class, or a class under a minimum
  share, named with their shares and the overrides that change them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    precision_score,
)

from factory.dataset import N_CLASSES, PROBA_COLUMNS

LABELS = list(range(N_CLASSES))  # class indices of CLASSES
# Metrics that rest on the trades / on the rows of a split (what a small sample undermines).
TRADE_METRICS = ("sharpe", "sharpe_se", "sortino", "max_drawdown", "total_return", "win_rate",
                 "profit_factor", "avg_trade_return", "gross_sharpe", "oracle_sharpe")
ROW_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "precision_short",
               "precision_long")


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1, log loss, per-direction precision."""
    if len(y) == 0:
        return {}
    proba = np.clip(np.asarray(proba, np.float64), 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)  # float32 model outputs sum to 1 +- 1e-7
    pred = proba.argmax(axis=1)
    precision = precision_score(y, pred, labels=LABELS, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, labels=LABELS, average="macro", zero_division=0)),
        "log_loss": float(log_loss(y, proba, labels=LABELS)),
        "precision_short": float(precision[0]),
        "precision_long": float(precision[2]),
        "n_samples": int(len(y)),
    }


def newey_west_lags(n: int) -> int:
    """Newey and West's (1994) rule of thumb, ``floor(4 (n / 100)^(2/9))``."""
    return int(np.floor(4.0 * (max(n, 1) / 100.0) ** (2.0 / 9.0)))


def sharpe_standard_error(sharpe: float, n_obs: int, periods_per_year: float,
                          returns: np.ndarray | None = None, lags: int | None = None) -> float:
    """Standard error of an annualised Sharpe ratio from ``n_obs`` per-period returns.

    Lo (2002). Without ``returns``, i.i.d. returns: ``se(SR_bar) = sqrt((1 + SR_bar^2 / 2) /
    n)``, annualised by ``sqrt(periods_per_year)`` like the Sharpe (under a driftless random
    walk marked-to-market bar returns are martingale differences: the leakage canary's
    case). With ``returns``, the delta method on the moments ``(r - mu, (r - mu)^2 -
    sigma^2)`` with a Newey-West long-run covariance over ``lags`` lags (default
    :func:`newey_west_lags`): serial correlation (positions held over many bars) and fat
    tails (mostly flat bars) widen it. NaN with fewer than two returns or no variance.
    """
    if returns is None:
        if n_obs < 2:
            return float("nan")
        per_bar = sharpe / np.sqrt(periods_per_year)
        return float(np.sqrt((1.0 + 0.5 * per_bar**2) / n_obs) * np.sqrt(periods_per_year))
    x = np.asarray(returns, np.float64)
    n = len(x)
    var = float(x.var()) if n > 1 else 0.0
    if n < 2 or var <= 0.0:
        return float("nan")
    mu = float(x.mean())
    d = x - mu
    g = np.column_stack([d, d * d - var])
    omega = g.T @ g / n
    width = min(newey_west_lags(n) if lags is None else int(lags), n - 1)
    for j in range(1, width + 1):
        gamma = g[j:].T @ g[:-j] / n
        omega += (1.0 - j / (width + 1.0)) * (gamma + gamma.T)
    grad = np.array([1.0 / np.sqrt(var), -mu / (2.0 * var**1.5)])
    per_bar_var = float(grad @ omega @ grad) / n
    return float(np.sqrt(max(per_bar_var, 0.0)) * np.sqrt(periods_per_year))


def small_sample_marks(metrics: dict, min_trades: int, min_rows: int) -> dict[str, str]:
    """``{metric: reason}`` for the metrics that a split's few trades (``n_trades`` <
    ``min_trades``: :data:`TRADE_METRICS`) or rows (``n_samples`` < ``min_rows``:
    :data:`ROW_METRICS`) undermine; the counts themselves are marked too."""
    marks = {}
    trades = metrics.get("n_trades")
    if trades is not None and trades < min_trades:
        reason = (f"{int(trades)} trade{'s' if trades != 1 else ''} < evaluation.min_trades="
                  f"{min_trades}")
        marks.update({k: reason for k in TRADE_METRICS})
        marks["n_trades"] = reason
    rows = metrics.get("n_samples")
    if rows is not None and rows < min_rows:
        reason = f"{int(rows)} rows < evaluation.min_rows={min_rows}"
        marks.update({k: reason for k in ROW_METRICS})
        marks["n_samples"] = reason
    return marks


def no_trade_reason(pred: pd.DataFrame, threshold: float) -> str:
    """Why a split's predictions open no trade (only called when there is none)."""
    if len(pred) == 0:
        return "the split has no rows"
    proba = pred[PROBA_COLUMNS].to_numpy(np.float64)
    best = proba.argmax(axis=1)
    top = proba.max(axis=1)
    n = len(pred)
    if "side" in pred:  # meta-labels: class +1 takes the primary side, 0 stands aside
        go = best == 2
        if not go.any():
            return (f"the meta-model never prefers taking the primary side on {n} rows "
                    f"(largest probability of +1: {proba[:, 2].max():.3f})")
        live = go & (pred["side"].to_numpy() != 0)
        if not live.any():
            return "the primary model gives no side (0) on every row the meta-model would take"
        directional = go
    else:
        directional = best != 1
        if not directional.any():
            largest = float(np.max(proba[:, [0, 2]]))
            return (f"the most probable class is 0 (flat) on all {n} rows (largest long/short "
                    f"probability: {largest:.3f}); the model learned to stand aside")
    largest = float(top[directional].max())
    if largest < threshold:
        lower = np.floor(largest * 100.0) / 100.0
        return (f"no long/short probability reached evaluation.threshold={threshold:g} on {n} "
                f"rows (largest seen: {largest:.3f}); lower it, e.g. "
                f"`evaluation.threshold={lower:.2f}`, if that is a level you would trade at")
    return "no signal survived the one-position-per-symbol rule"


def label_balance_problem(labels: np.ndarray, min_share: float, classes: tuple) -> str | None:
    """A one-line description when a class of ``classes`` is missing from the training
    ``labels`` or has a share under ``min_share``; None when every class is represented."""
    n = len(labels)
    if n == 0:
        return None
    shares = {c: float(np.mean(labels == c)) for c in classes}
    text = ", ".join(f"{c:+d}: {s:.1%}" if c else f"0: {s:.1%}" for c, s in shares.items())
    present = [c for c, s in shares.items() if s > 0]
    if len(present) <= 1:
        return f"the {n} training labels have one class ({text})"
    low = [c for c, s in shares.items() if s < min_share]
    if low:
        return (f"class {low[0]} is {shares[low[0]]:.2%} of the {n} training labels, under "
                f"evaluation.min_class_share={min_share:g} ({text})")
    return None
