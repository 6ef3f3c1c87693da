"""How different the base models are, and what each one adds to the ensemble.

An ensemble only helps if its members err differently. :func:`prediction_correlation` is the
Pearson correlation of each model's directional view ``p_long - p_short`` (the quantity a
trading rule acts on); :func:`disagreement` is the share of rows where two models' argmax
classes differ. :func:`ablation` answers "does model k earn its place?" by refitting the
combiner without each base model in turn. All outputs are JSON-able or DataFrames for reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from factory.ensemble.common import (
    Combiner,
    as_labels,
    as_proba_stack,
    as_weights,
    log_loss,
    model_names,
)
from factory.errors import FactoryError

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]


def prediction_correlation(P: Any, names: Sequence[str] | None = None) -> pd.DataFrame:
    """``m x m`` Pearson correlation of ``p_long - p_short``; NaN for a constant model."""
    P = as_proba_stack(P)
    d = P[:, :, 2] - P[:, :, 0]
    d = d - d.mean(axis=0)
    norm = np.sqrt((d ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (d.T @ d) / np.outer(norm, norm)
    np.fill_diagonal(corr, np.where(norm > 0, 1.0, np.nan))
    labels = model_names(P.shape[1], names)
    return pd.DataFrame(corr, index=labels, columns=labels)


def disagreement(P: Any, names: Sequence[str] | None = None) -> pd.DataFrame:
    """``m x m`` share of rows where two models' argmax classes differ (0 on the diagonal)."""
    P = as_proba_stack(P)
    votes = P.argmax(axis=2)
    rate = (votes[:, :, None] != votes[:, None, :]).mean(axis=0)
    labels = model_names(P.shape[1], names)
    return pd.DataFrame(rate, index=labels, columns=labels)


def diversity_report(P: Any, y: Any = None, names: Sequence[str] | None = None,
                     sample_weight: Any = None) -> dict:
    """Correlation and disagreement matrices, plus each model's log loss / accuracy given y."""
    P = as_proba_stack(P)
    labels = model_names(P.shape[1], names)
    out: dict = {"correlation": prediction_correlation(P, labels).to_dict(),
                 "disagreement": disagreement(P, labels).to_dict()}
    if y is not None:
        y = as_labels(y, len(P))
        s = as_weights(sample_weight, len(P))
        hit = P.argmax(axis=2) == y[:, None]
        out["log_loss"] = {k: log_loss(y, P[:, i], s) for i, k in enumerate(labels)}
        out["accuracy"] = {k: float((hit[:, i] * s).sum() / s.sum())
                           for i, k in enumerate(labels)}
    return out


def _without(combiner: Combiner, k: int) -> Combiner:
    """Drop model k's entry from fixed per-model voting weights, if the combiner has them."""
    weights = getattr(combiner, "weights", None)
    if isinstance(weights, (list, tuple, np.ndarray)):
        combiner.set_params(weights=[w for i, w in enumerate(weights) if i != k])
    return combiner


def ablation(make_combiner: Callable[[], Combiner], P: Any, y: Any,
             names: Sequence[str] | None = None, metric: Metric = log_loss,
             sample_weight: Any = None, R: Any = None, P_eval: Any = None, y_eval: Any = None,
             R_eval: Any = None, sample_weight_eval: Any = None) -> dict:
    """Refit the combiner without each base model; report the metric and its change.

    ``make_combiner()`` returns a fresh unfitted combiner (e.g. ``EnsembleSpec.make_combiner``).
    It is fitted on ``(P, y, sample_weight, R)`` and scored with ``metric(y, proba, weight)``
    on ``(P_eval, y_eval, ...)`` when given, else on the fitting rows (optimistic for flexible
    learners: pass a held-out block). Returns ``{"metric", "full", "without": {name: score},
    "delta": {name: score_without - full}}``; for a loss (the default log loss) a positive
    delta means the model helps.
    """
    P = as_proba_stack(P)
    m = P.shape[1]
    if m < 2:
        raise FactoryError("ensemble ablation needs at least 2 base models")
    labels = model_names(m, names)
    y = as_labels(y, len(P))
    if P_eval is None:
        P_eval, y_eval, R_eval, sample_weight_eval = P, y, R, sample_weight
    P_eval = as_proba_stack(P_eval, m)
    y_eval = as_labels(y_eval, len(P_eval))

    def score(keep: list[int], k: int | None) -> float:
        combiner = make_combiner() if k is None else _without(make_combiner(), k)
        combiner.fit(P[:, keep], y, sample_weight=sample_weight, R=R)
        proba = combiner.predict_proba(P_eval[:, keep], R=R_eval)
        return float(metric(y_eval, proba, sample_weight_eval))

    full = score(list(range(m)), None)
    without = {labels[k]: score([i for i in range(m) if i != k], k) for k in range(m)}
    return {"metric": getattr(metric, "__name__", "metric"), "full": full, "without": without,
            "delta": {k: v - full for k, v in without.items()}}
