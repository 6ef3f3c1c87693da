"""What every combiner shares: input checks, stacked features, the weight optimiser, the base.

* Inputs are validated once, here, so each combiner raises the same clear
  :class:`~factory.errors.FactoryError` for a wrong shape, a NaN or a bad label.
* :func:`stack_features` turns ``P (n, m, 3)`` into the meta-learners' design matrix.
* :func:`fit_gate` is the one optimiser behind learned voting weights, the calibrated blender
  and the regime-gated mixture: it fits ``w(z) = softmax(a + A z)`` (non-negative, summing to 1
  over models) minimising the weighted log loss of the mixture ``sum_k w_k(z) q_k``.
* :class:`Combiner` holds the state / from_state plumbing: a state is a plain JSON dict
  ``{"kind", "version", "params", "fitted"}`` with arrays as nested lists (JSON keeps every
  float64 exactly, so a reloaded combiner predicts bit-for-bit the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.base import BaseEstimator

from factory.dataset import CLASS_NAMES, N_CLASSES
from factory.errors import FactoryError

# Probabilities are floored here before any log: one base model saying exactly 0 for the
# realised class must not make a log loss infinite (1e-6 is far below any useful signal).
EPS = 1e-6
# Row sums of base-model probabilities may be off by float32 rounding, not by more.
SUM_TOL = 1e-3
STATE_VERSION = 1


def as_proba_stack(P: Any, n_models: int | None = None) -> np.ndarray:
    """``P`` as float64 ``(n, m, 3)``, checked: finite, in [0, 1], rows summing to 1."""
    arr = np.asarray(P, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != N_CLASSES or arr.shape[0] == 0:
        raise FactoryError(f"ensemble: base-model probabilities must have shape (n, m, 3) with "
                           f"n >= 1, got {arr.shape}; stack each model's predict_proba on axis 1")
    if n_models is not None and arr.shape[1] != n_models:
        raise FactoryError(f"ensemble: the combiner was fitted on {n_models} base models but got "
                           f"{arr.shape[1]}; pass the same `ensemble.base_models`, same order")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise FactoryError("ensemble: base-model probabilities must be finite and in [0, 1]; a "
                           "base model produced NaN/inf or out-of-range values")
    worst = float(np.abs(arr.sum(axis=2) - 1).max())
    if worst > SUM_TOL:
        raise FactoryError(f"ensemble: base-model probability rows must sum to 1 (worst is off by "
                           f"{worst:.3g}); pass predict_proba outputs, not scores")
    return arr


def as_labels(y: Any, n: int) -> np.ndarray:
    """``y`` as int64 class indices 0/1/2 of length ``n``, with at least two classes."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise FactoryError(f"ensemble: labels must have shape ({n},), got {arr.shape}")
    if not np.isin(arr, (0, 1, 2)).all():
        raise FactoryError("ensemble: labels must be class indices 0/1/2 (-1/0/1 mapped with "
                           "factory.dataset.labels_to_index)")
    arr = arr.astype(np.int64)
    if len(np.unique(arr)) < 2:
        raise FactoryError("ensemble: the combiner's training rows hold a single class; need >= 2")
    return arr


def as_weights(sample_weight: Any, n: int) -> np.ndarray:
    """Sample weights as float64 ``(n,)``, rescaled to mean 1 (ones when None).

    Mean 1 keeps a learner's regularisation strength (``C``, ``alpha``) meaning the same with
    or without weights: triple-barrier uniqueness weights are often ~0.1 on average.
    """
    if sample_weight is None:
        return np.ones(n)
    arr = np.asarray(sample_weight, dtype=np.float64)
    if arr.shape != (n,) or not np.isfinite(arr).all() or arr.min() < 0 or arr.sum() <= 0:
        raise FactoryError(f"ensemble: sample_weight must be ({n},), finite, >= 0 with a positive "
                           f"sum; got shape {arr.shape}")
    return arr * (n / arr.sum())


def as_regimes(R: Any, n: int) -> tuple[np.ndarray, list[str] | None]:
    """Regime features as float64 ``(n, r)`` plus their column names (DataFrame input only)."""
    if R is None:
        raise FactoryError("ensemble: this meta-learner needs regime features R; set "
                           "`ensemble.regime_columns` to patterns matching dataset columns")
    names = [str(c) for c in R.columns] if isinstance(R, pd.DataFrame) else None
    arr = np.asarray(R, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
        raise FactoryError(f"ensemble: regime features must have shape ({n}, r >= 1), got "
                           f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise FactoryError("ensemble: regime features hold NaN/inf; drop warm-up rows first")
    return arr, names


def model_names(m: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [f"model_{k}" for k in range(m)]
    if len(names) != m:
        raise FactoryError(f"ensemble: {len(names)} names for {m} base models")
    return [str(s) for s in names]


def stack_features(P: np.ndarray, use_log_odds: bool) -> np.ndarray:
    """The meta-learners' design matrix ``(n, m * 3)``, model-major (model k: columns 3k..3k+2).

    Raw probabilities are used as they are. With ``use_log_odds`` each model's row becomes its
    centred log-ratio ``log p_c - mean_c log p`` (the symmetric multinomial log-odds): a linear
    model on it is log-linear pooling (a weighted product of the models' distributions), it
    spreads confident 0.99-vs-0.999 differences that raw probabilities squash, and it drops
    the redundant "sums to 1" direction.
    """
    if use_log_odds:
        logp = np.log(np.clip(P, EPS, 1.0))
        P = logp - logp.mean(axis=2, keepdims=True)
    return P.reshape(len(P), -1)


def feature_names(names: Sequence[str], use_log_odds: bool) -> list[str]:
    prefix = "lo" if use_log_odds else "p"
    return [f"{name}:{prefix}_{c}" for name in names for c in CLASS_NAMES]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def true_class_proba(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(n, m)``: each model's probability of the realised class."""
    return P[np.arange(len(y)), :, y]


def log_loss(y: np.ndarray, proba: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Weighted multiclass log loss (probabilities floored at :data:`EPS`)."""
    s = as_weights(sample_weight, len(y))
    p = np.clip(np.asarray(proba)[np.arange(len(y)), y], EPS, 1.0)
    return float(-(s * np.log(p)).sum() / s.sum())


def fit_gate(Q: np.ndarray, Z: np.ndarray | None, sample_weight: np.ndarray, l2: float,
             max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``w(z) = softmax(a + A z)`` over ``m`` models minimising the weighted log loss.

    ``Q (n, m)`` is each model's probability of the realised class, so the mixture's
    probability of it is ``sum_k w_k(z) Q_k`` and its loss is ``-mean_s log(...)``. With no
    ``Z`` this is the classic learned simplex weights (softmax parametrisation keeps them
    non-negative and summing to 1 without constraints). ``l2`` penalises ``A`` only (callers
    standardise ``Z``). Analytic gradient, L-BFGS from equal weights: deterministic. The
    gradient sums to zero over models, so the logits' mean never drifts (no need to pin one).
    Returns ``a (m,)`` and ``A (m, r)``.
    """
    n, m = Q.shape
    Z = np.zeros((n, 0)) if Z is None else Z
    Zc = np.hstack([np.ones((n, 1)), Z])
    Q = np.clip(Q, EPS, None)
    s = sample_weight / sample_weight.sum()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta.reshape(m, -1)
        w = softmax(Zc @ W.T)
        mix = (w * Q).sum(axis=1)
        G = w * (1.0 - Q / mix[:, None]) * s[:, None]
        grad = G.T @ Zc
        grad[:, 1:] += 2.0 * l2 * W[:, 1:]
        loss = -(s * np.log(mix)).sum() + l2 * (W[:, 1:] ** 2).sum()
        return float(loss), grad.ravel()

    res = minimize(objective, np.zeros(m * Zc.shape[1]), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter})
    W = res.x.reshape(m, -1)
    return W[:, 0].copy(), W[:, 1:].copy()


def block_weights(coef: np.ndarray, m: int) -> np.ndarray:
    """Per-model share of ``|coef|`` for a model-major ``(k, m * 3)`` coefficient matrix."""
    mass = np.abs(np.asarray(coef)).reshape(-1, m, N_CLASSES).sum(axis=(0, 2))
    return mass / mass.sum() if mass.sum() > 0 else np.full(m, 1.0 / m)


def to_json(value: Any) -> Any:
    """Plain JSON types: arrays/tuples to lists, numpy scalars to Python numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Combiner(BaseEstimator):
    """Base of every combiner: fitted state as JSON, interpretable per-model weights.

    Subclasses set ``kind`` (their name in reports), implement ``fit`` / ``predict_proba`` /
    ``model_weights``, and ``_fitted_state`` / ``_load_fitted`` for the arrays they learn.
    ``needs_regimes`` tells the caller whether ``R`` must be passed.
    """

    kind: ClassVar[str] = ""
    needs_regimes: ClassVar[bool] = False

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_models_"):
            raise FactoryError(f"ensemble: {type(self).__name__} is not fitted; call fit first")

    def model_weights(self) -> np.ndarray:  # pragma: no cover - interface
        """One non-negative number per base model, summing to 1 (for reports)."""
        raise NotImplementedError

    def _details(self, names: list[str]) -> dict:
        return {}

    def describe(self, names: Sequence[str] | None = None) -> dict:
        """JSON-able summary for reports: ``kind``, per-model ``weights`` and learner details."""
        self._check_fitted()
        names = model_names(self.n_models_, names)
        weights = {k: float(w) for k, w in zip(names, self.model_weights(), strict=True)}
        return {"kind": self.kind, "weights": weights, **to_json(self._details(names))}

    def _fitted_state(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def _load_fitted(self, fitted: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def state(self) -> dict:
        """JSON-able ``{"kind", "version", "params", "fitted"}``; see :meth:`from_state`."""
        self._check_fitted()
        fitted = {"n_models": int(self.n_models_), **self._fitted_state()}
        return {"kind": self.kind, "version": STATE_VERSION,
                "params": to_json(self.get_params()), "fitted": to_json(fitted)}

    @classmethod
    def from_state(cls, state: dict) -> Combiner:
        """Rebuild a fitted combiner from :meth:`state` (after a JSON round trip)."""
        if state.get("kind") != cls.kind or state.get("version") != STATE_VERSION:
            raise FactoryError(f"ensemble: state of kind {state.get('kind')!r} version "
                               f"{state.get('version')!r} cannot load as {cls.kind!r} version "
                               f"{STATE_VERSION}; re-run the ensemble to rebuild it")
        obj = cls(**state["params"])
        obj.n_models_ = int(state["fitted"]["n_models"])
        obj._load_fitted(state["fitted"])
        return obj
