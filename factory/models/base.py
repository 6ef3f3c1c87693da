"""The model contract shared by every family: scikit-learn classifiers.

* **Tabular models** (:class:`TabularClassifier`) are scikit-learn classifiers in full:
  ``fit(X, y, sample_weight=None, eval_set=None)`` (``eval_set``: ``[(X_val, y_val)]`` or
  ``[(X_val, y_val, w_val)]``, used for early stopping where the model has it),
  ``predict_proba`` with columns in ``classes_`` order, ``predict``, ``classes_`` (the labels
  seen in ``y``), ``NotFittedError`` before ``fit`` and scikit-learn's input validation. They
  pass ``sklearn.utils.estimator_checks.check_estimator`` (tests/test_sklearn_estimators.py),
  so they work in a ``Pipeline``, ``cross_val_score`` or a notebook without the framework.
* **Window models** (:class:`WindowClassifier`: torch networks, zero-shot forecasters) follow
  the same calling convention, but ``X`` is an adapter's lazy window input (it gathers the
  windows batch by batch) and ``classes_`` is always the full vocabulary
  :data:`factory.dataset.CLASSES`, because the network's head has one output per class.

Shared by both, as class attributes and methods: ``family``, ``input_kind`` (the adapter it
eats), ``scaling`` (what the tabular adapter should do for it), ``predict_output`` (adds the
expected return and confidence of probabilistic forecasters), ``feature_importance``, and the
artifact hooks ``save_native`` / ``load_native`` / ``native_state`` (native formats + JSON;
:mod:`factory.models.artifacts` adds the manifest with hashes). Fitted attributes end in
``_``; ``__init__`` only stores parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from factory.dataset import CLASSES, labels_to_index
from factory.threads import resolve_threads  # noqa: F401  (re-exported for models)


@dataclass
class PredictionOutput:
    """Class probabilities (columns in the model's ``classes_`` order), plus, for probabilistic
    forecasters, the expected return over the horizon and a confidence in [0, 1]."""

    proba: np.ndarray
    expected_return: np.ndarray | None = None
    confidence: np.ndarray | None = None


class ModelHooks:
    """Capabilities and artifact hooks every factory model has (see the module docstring)."""

    family: ClassVar[str] = "tabular"
    input_kind: ClassVar[str] = "tabular"
    scaling: ClassVar[str] = "none"

    def predict_output(self, X) -> PredictionOutput:
        """Probabilities plus any expected return / confidence the model can give."""
        return PredictionOutput(np.asarray(self.predict_proba(X), np.float64))

    def feature_importance(self) -> np.ndarray | None:
        """Native importance per input feature, or None (evaluation then uses permutation)."""
        return None

    def save_native(self, path: Path) -> list[str]:  # pragma: no cover - interface
        """Write the fitted model into ``path``; return the file names written."""
        raise NotImplementedError

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict):  # pragma: no cover
        """Rebuild a fitted model from ``save_native``'s files, its params and ``state``."""
        raise NotImplementedError

    def native_state(self) -> dict:
        """Small JSON-serialisable fitted state saved in the manifest (e.g. best iteration)."""
        return {}


# Below this many rows a prediction runs on one thread: waking OpenMP workers for a live bar
# costs more than the trees (measured: 1.5 ms on one thread, 80 ms on two, loaded 2 cores).
SMALL_BATCH = 1024


def predict_threads(n_rows: int, n_jobs: int | None) -> int:
    """Threads for predicting ``n_rows`` rows (results do not depend on it)."""
    return 1 if n_rows < SMALL_BATCH else resolve_threads(n_jobs)


def one_class_error(name: str, classes) -> ValueError:
    return ValueError(f"{name}: the training labels hold 1 class ({list(classes)}); a "
                      f"classifier needs at least 2 classes")


class TabularClassifier(ClassifierMixin, ModelHooks, BaseEstimator):
    """Base of the tabular models: validation and label encoding around ``_fit_encoded``.

    Subclasses implement ``_fit_encoded(X, y, sample_weight, eval_set)`` on class indices
    ``0..len(classes_)-1`` (``eval_set`` is None or ``(X_val, y_val, w_val)`` already encoded,
    rows of classes unseen in training dropped) and ``_predict_encoded(X) -> (n, n_classes)``.
    ``allow_nan`` says whether the library handles missing values natively.
    """

    allow_nan: ClassVar[bool] = False
    # checks of sklearn's check_estimator that cannot apply to a model, each with a reason
    # (passed as its `expected_failed_checks`; tests/test_sklearn_estimators.py)
    sklearn_expected_failures: ClassVar[dict[str, str]] = {}

    def _validate(self, X, reset: bool = False):
        return validate_data(self, X, reset=reset, dtype=[np.float32, np.float64],
                             ensure_all_finite="allow-nan" if self.allow_nan else True)

    def _eval_set(self, eval_set):
        """``[(X, y[, w])]`` (or one tuple) -> encoded ``(X, y, w)`` of known classes, or None."""
        if eval_set is None or len(eval_set) == 0:
            return None
        item = eval_set[0] if isinstance(eval_set, list) else eval_set
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise ValueError("eval_set must be [(X_val, y_val)] or [(X_val, y_val, w_val)]")
        X_val, y_val, w_val = (*item, None) if len(item) == 2 else item
        X_val = self._validate(X_val)
        y_val = np.asarray(y_val)
        known = np.isin(y_val, self.classes_)
        w_val = (np.ones(len(y_val)) if w_val is None
                 else _check_sample_weight(w_val, X_val, dtype=np.float64))
        if not known.any():
            return None
        return (X_val[known], np.searchsorted(self.classes_, y_val[known]), w_val[known])

    def fit(self, X, y, sample_weight=None, eval_set=None):
        """Fit on ``X`` (n, features) and labels ``y``; ``eval_set`` for early stopping."""
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64],
                             ensure_all_finite="allow-nan" if self.allow_nan else True)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise one_class_error(type(self).__name__, self.classes_)
        weight = (None if sample_weight is None
                  else _check_sample_weight(sample_weight, X, dtype=np.float64))
        self._fit_encoded(X, encoded.astype(np.int64), weight, self._eval_set(eval_set))
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``(n, len(classes_))`` probabilities, columns in ``classes_`` order."""
        check_is_fitted(self)
        return np.asarray(self._predict_encoded(self._validate(X)), np.float64)

    def predict(self, X) -> np.ndarray:
        """The most probable class label per row."""
        winner = self.predict_proba(X).argmax(axis=1)
        return self.classes_[winner]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.allow_nan
        return tags

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:  # pragma: no cover
        raise NotImplementedError

    def _predict_encoded(self, X) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _base_state(self) -> dict:
        """The fitted state every tabular model saves (classes and input width)."""
        return {"classes": self.classes_.tolist(), "n_features_in": int(self.n_features_in_)}

    def _load_base_state(self, state: dict) -> None:
        self.classes_ = np.asarray(state["classes"])
        self.n_features_in_ = int(state["n_features_in"])


class WindowClassifier(ClassifierMixin, ModelHooks, BaseEstimator):
    """Base of models that read an adapter's lazy window input (torch networks, zero-shot).

    ``fit(X, y=None, sample_weight=None, eval_set=None)``: ``X`` is a window input (sequence,
    multires or context); ``y`` are labels (-1/0/1; default: the input's own labels) and
    ``sample_weight`` weights (default: the input's own); ``eval_set`` is ``[(X_val, y_val[,
    w_val])]``. ``classes_`` is always :data:`factory.dataset.CLASSES`.
    """

    classes_: np.ndarray

    @staticmethod
    def with_targets(x, y=None, sample_weight=None):
        """The window input ``x`` with labels ``y`` (class indices) and weights replaced."""
        changes = {}
        if y is not None:
            changes["y"] = labels_to_index(y)
        if sample_weight is not None:
            changes["weight"] = np.asarray(sample_weight, np.float64)
        return replace(x, **changes) if changes else x

    @classmethod
    def unpack_eval_set(cls, eval_set):
        """``[(X_val, y_val[, w_val])]`` (or a bare window input) -> one window input or None."""
        if eval_set is None:
            return None
        if isinstance(eval_set, list):
            if not eval_set:
                return None
            eval_set = eval_set[0]
        if isinstance(eval_set, tuple):
            return cls.with_targets(*eval_set)
        return eval_set

    def _set_classes(self) -> None:
        self.classes_ = np.asarray(CLASSES)

    def predict(self, X) -> np.ndarray:
        """The most probable class label per row."""
        winner = self.predict_proba(X).argmax(axis=1)
        return self.classes_[winner]
