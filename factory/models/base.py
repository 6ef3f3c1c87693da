"""The model contract (scikit-learn style) shared by every family.

* explicit keyword parameters with defaults, no logic in ``__init__``; fitted attributes
  end in ``_``; ``fit`` returns ``self``;
* ``predict_proba`` returns an ``(n, 3)`` array in the fixed class order of
  :data:`factory.dataset.CLASSES` (-1, 0, 1), rows summing to 1, even when a class was
  absent from the training data;
* capabilities are class attributes: ``family``, ``input_kind`` (the adapter it eats),
  ``scaling`` (what the tabular adapter should do for it);
* artifacts are written in the library's native format by ``save_native`` and read back by
  ``load_native``; :mod:`factory.models.artifacts` adds the JSON manifest and hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from factory.threads import resolve_threads  # noqa: F401  (re-exported for models)

N_CLASSES = 3


@dataclass
class PredictionOutput:
    """What every model returns: class probabilities, plus, for probabilistic forecasters,
    the expected return over the horizon and a confidence in [0, 1] (None otherwise)."""

    proba: np.ndarray
    expected_return: np.ndarray | None = None
    confidence: np.ndarray | None = None


class BaseModel(BaseEstimator):
    family: ClassVar[str] = "tabular"
    input_kind: ClassVar[str] = "tabular"
    scaling: ClassVar[str] = "none"

    def fit(self, train, val=None) -> BaseModel:  # pragma: no cover - interface
        raise NotImplementedError

    def predict_proba(self, x) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def predict_output(self, x) -> PredictionOutput:
        """Probabilities plus any expected return / confidence the model can give."""
        return PredictionOutput(np.asarray(self.predict_proba(x), np.float64))

    def feature_importance(self) -> np.ndarray | None:
        """Native importance per input feature, or None (evaluation then uses permutation)."""
        return None

    def save_native(self, path: Path) -> list[str]:  # pragma: no cover - interface
        """Write the fitted model into ``path``; return the file names written."""
        raise NotImplementedError

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> BaseModel:  # pragma: no cover
        """Rebuild a fitted model from ``save_native``'s files, its params and ``state``."""
        raise NotImplementedError

    def native_state(self) -> dict:
        """Small JSON-serialisable fitted state saved in the manifest (e.g. best iteration)."""
        return {}


def full_proba(proba: np.ndarray, classes_present) -> np.ndarray:
    """Place columns of ``proba`` (for class indices ``classes_present``) into 3 columns."""
    proba = np.asarray(proba, np.float64)
    out = np.zeros((len(proba), N_CLASSES))
    out[:, np.asarray(classes_present, np.int64)] = proba
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)
