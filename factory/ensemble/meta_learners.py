"""Meta-learners for stacking / blending (each chosen by a YAML in conf/ensemble/combiner/).

A meta-learner is fitted on the base models' out-of-fold probabilities ``P (n, m, 3)``. The
model-based ones (``logistic``, ``ridge``, ``mlp``, ``gradient_boosting``) see the stacked
``m * 3`` features of :func:`~factory.ensemble.common.stack_features`: raw probabilities, or
with ``use_log_odds`` each model's centred log-ratios (then a linear learner is log-linear
pooling: a weighted geometric mean of the models, recalibrated). ``calibrated`` and
``regime_aware`` mix the models' (calibrated) probabilities directly with simplex weights.

Every learner predicts with its own numpy code from the arrays it saves in ``state()`` (never
through a pickled estimator), so a reloaded learner predicts bit-for-bit what the fitted one
did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from factory.dataset import place_columns
from factory.ensemble.calibration import apply_calibrators, crossfit, fit_calibrators
from factory.ensemble.common import (
    N_CLASSES,
    Combiner,
    as_labels,
    as_proba_stack,
    as_weights,
    block_weights,
    feature_names,
    fit_gate,
    log_loss,
    softmax,
    stack_features,
    true_class_proba,
)

# Search range of the ridge learner's softmax temperature, as log(T): T in [0.007, 150].
LOG_TEMPERATURE_BOUNDS = (-5.0, 5.0)


def _checked(P: Any, y: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    P = as_proba_stack(P)
    return P, as_labels(y, len(P)), as_weights(sample_weight, len(P))


def linear_proba(F: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 classes: np.ndarray) -> np.ndarray:
    """Softmax of ``F coef^T + b`` in 3 columns; one row of ``coef`` is the binary case."""
    z = F @ coef.T + intercept
    if z.shape[1] == 1:  # scikit-learn's binary logistic: sigmoid(z) == softmax([-z/2, z/2])
        z = np.hstack([-z / 2, z / 2])
    return place_columns(softmax(z), classes)


class _Linear(Combiner):
    """Shared state / reporting of the linear learners (``coef_`` over stacked features)."""

    def model_weights(self) -> np.ndarray:
        self._check_fitted()
        return block_weights(self.coef_, self.n_models_)

    def _details(self, names: list[str]) -> dict:
        cols = feature_names(names, self.use_log_odds)
        rows = [f"class_{c}" for c in self.classes_] if len(self.coef_) > 1 else ["decision"]
        return {"coef": {r: dict(zip(cols, row, strict=True))
                         for r, row in zip(rows, self.coef_.tolist(), strict=True)},
                "intercept": self.intercept_}

    def _fitted_state(self) -> dict:
        return {"coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_}

    def _load_fitted(self, fitted: dict) -> None:
        self.coef_ = np.asarray(fitted["coef"], dtype=np.float64)
        self.intercept_ = np.asarray(fitted["intercept"], dtype=np.float64)
        self.classes_ = np.asarray(fitted["classes"], dtype=np.int64)


class LogisticMeta(_Linear):
    """Multinomial L2 logistic regression on the stacked features (the default learner).

    ``describe()`` weights: each model's share of ``|coef|``.
    """

    kind = "logistic"

    def __init__(self, C: float = 1.0, use_log_odds: bool = True, max_iter: int = 1000,
                 tol: float = 1e-6) -> None:
        self.C = C
        self.use_log_odds = use_log_odds
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, P: Any, y: Any, sample_weight: Any = None, R: Any = None) -> LogisticMeta:
        """Fit on ``P``; ``R`` is ignored (see ``regime_aware`` for a learner that reads it)."""
        from sklearn.linear_model import LogisticRegression

        P, y, s = _checked(P, y, sample_weight)
        F = stack_features(P, self.use_log_odds)
        est = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        est.fit(F, y, sample_weight=s)
        self.coef_ = np.ascontiguousarray(est.coef_, dtype=np.float64)
        self.intercept_ = np.ascontiguousarray(est.intercept_, dtype=np.float64)
        self.classes_ = est.classes_.astype(np.int64)
        self.n_models_ = P.shape[1]
        return self

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        F = stack_features(as_proba_stack(P, self.n_models_), self.use_log_odds)
        return linear_proba(F, self.coef_, self.intercept_, self.classes_)


class RidgeMeta(_Linear):
    """``RidgeClassifier``'s fit (ridge regression on +-1 class indicators), as probabilities.

    The three decision values ``d`` become ``softmax(T * d)`` with one temperature ``T`` fitted
    by weighted log loss on the same rows (a 1-parameter calibration that cannot reorder the
    classes). Fitted with ``Ridge`` on all three indicator columns, so a class absent from the
    rows still gets its (very negative) decision value and the output is always 3 columns.
    """

    kind = "ridge"

    def __init__(self, alpha: float = 1.0, use_log_odds: bool = True) -> None:
        self.alpha = alpha
        self.use_log_odds = use_log_odds

    def fit(self, P: Any, y: Any, sample_weight: Any = None, R: Any = None) -> RidgeMeta:
        from sklearn.linear_model import Ridge

        P, y, s = _checked(P, y, sample_weight)
        F = stack_features(P, self.use_log_odds)
        targets = 2.0 * np.eye(N_CLASSES)[y] - 1.0
        est = Ridge(alpha=self.alpha).fit(F, targets, sample_weight=s)
        coef = np.ascontiguousarray(est.coef_, dtype=np.float64)
        intercept = np.ascontiguousarray(est.intercept_, dtype=np.float64)
        d = F @ coef.T + intercept
        res = minimize_scalar(lambda t: log_loss(y, softmax(np.exp(t) * d), s),
                              bounds=LOG_TEMPERATURE_BOUNDS, method="bounded")
        self.temperature_ = float(np.exp(res.x))
        self.coef_, self.intercept_ = coef * self.temperature_, intercept * self.temperature_
        self.classes_ = np.arange(N_CLASSES)
        self.n_models_ = P.shape[1]
        return self

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        F = stack_features(as_proba_stack(P, self.n_models_), self.use_log_odds)
        return linear_proba(F, self.coef_, self.intercept_, self.classes_)

    def _details(self, names: list[str]) -> dict:
        return {**super()._details(names), "temperature": self.temperature_}

    def _fitted_state(self) -> dict:
        return {**super()._fitted_state(), "temperature": self.temperature_}

    def _load_fitted(self, fitted: dict) -> None:
        super()._load_fitted(fitted)
        self.temperature_ = float(fitted["temperature"])


class MLPMeta(Combiner):
    """A small ReLU ``MLPClassifier`` (adam, early stopping on a random validation share).

    Saved as its weight matrices; predictions are the same forward pass in numpy.
    ``describe()`` weights: each model's share of ``|first-layer weights|`` (a rough guide:
    later layers can undo them).
    """

    kind = "mlp"

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (16,), alpha: float = 1e-3,
                 learning_rate_init: float = 1e-3, max_iter: int = 300,
                 early_stopping: bool = True, validation_fraction: float = 0.2,
                 n_iter_no_change: int = 10, use_log_odds: bool = True,
                 random_state: int = 0) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.use_log_odds = use_log_odds
        self.random_state = random_state

    def fit(self, P: Any, y: Any, sample_weight: Any = None, R: Any = None) -> MLPMeta:
        from sklearn.neural_network import MLPClassifier

        P, y, s = _checked(P, y, sample_weight)
        est = MLPClassifier(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes), activation="relu", solver="adam",
            alpha=self.alpha, learning_rate_init=self.learning_rate_init, max_iter=self.max_iter,
            early_stopping=self.early_stopping, validation_fraction=self.validation_fraction,
            n_iter_no_change=self.n_iter_no_change, random_state=self.random_state)
        est.fit(stack_features(P, self.use_log_odds), y, sample_weight=s)
        # C-contiguous float64, as a JSON reload gives: same layout, same float sums
        self.coefs_ = [np.ascontiguousarray(w, dtype=np.float64) for w in est.coefs_]
        self.intercepts_ = [np.ascontiguousarray(b, dtype=np.float64) for b in est.intercepts_]
        self.classes_ = est.classes_.astype(np.int64)
        self.n_models_ = P.shape[1]
        return self

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        h = stack_features(as_proba_stack(P, self.n_models_), self.use_log_odds)
        for W, b in zip(self.coefs_[:-1], self.intercepts_[:-1], strict=True):
            h = np.maximum(h @ W + b, 0.0)
        return linear_proba(h, self.coefs_[-1].T, self.intercepts_[-1], self.classes_)

    def model_weights(self) -> np.ndarray:
        self._check_fitted()
        return block_weights(self.coefs_[0].T, self.n_models_)

    def _fitted_state(self) -> dict:
        return {"coefs": self.coefs_, "intercepts": self.intercepts_, "classes": self.classes_}

    def _load_fitted(self, fitted: dict) -> None:
        self.coefs_ = [np.asarray(w, dtype=np.float64) for w in fitted["coefs"]]
        self.intercepts_ = [np.asarray(b, dtype=np.float64) for b in fitted["intercepts"]]
        self.classes_ = np.asarray(fitted["classes"], dtype=np.int64)


class CalibratedBlender(Combiner):
    """Calibrate each model (isotonic or Platt, one-vs-rest), then learn simplex weights.

    Weights are non-negative, sum to 1 and minimise the weighted log loss of the blend of
    *cross-fitted* calibrated probabilities (``folds`` contiguous blocks, see
    :func:`~factory.ensemble.calibration.crossfit`); the calibrators used for prediction are
    then refitted on all rows. ``describe()`` weights are the blend weights themselves.
    """

    kind = "calibrated"

    def __init__(self, method: str = "isotonic", folds: int = 5, max_iter: int = 500) -> None:
        self.method = method
        self.folds = folds
        self.max_iter = max_iter

    def fit(self, P: Any, y: Any, sample_weight: Any = None, R: Any = None) -> CalibratedBlender:
        P, y, s = _checked(P, y, sample_weight)
        calibrated = crossfit(P, y, s, self.method, self.folds, self.max_iter)
        a, _ = fit_gate(true_class_proba(calibrated, y), None, s, 0.0, self.max_iter)
        self.weights_ = softmax(a[None, :])[0]
        self.calibrators_ = fit_calibrators(P, y, s, self.method, self.max_iter)
        self.n_models_ = P.shape[1]
        return self

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        Q = apply_calibrators(as_proba_stack(P, self.n_models_), self.calibrators_)
        return np.einsum("nmc,m->nc", Q, self.weights_)

    def model_weights(self) -> np.ndarray:
        self._check_fitted()
        return self.weights_.copy()

    def _details(self, names: list[str]) -> dict:
        return {"calibration": self.method}

    def _fitted_state(self) -> dict:
        return {"weights": self.weights_, "calibrators": self.calibrators_}

    def _load_fitted(self, fitted: dict) -> None:
        self.weights_ = np.asarray(fitted["weights"], dtype=np.float64)
        self.calibrators_ = fitted["calibrators"]
