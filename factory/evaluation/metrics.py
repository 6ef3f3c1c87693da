"""Classification metrics on class probabilities (fixed class order -1, 0, 1)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    precision_score,
)

from factory.dataset import N_CLASSES

LABELS = list(range(N_CLASSES))  # class indices of CLASSES


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
