"""Soft and hard voting: the simplest combiners, with fixed or learned model weights.

``weights`` is ``None`` (equal), ``"learned"`` or a list of non-negative numbers (normalised to
sum 1). Learned weights come from :func:`~factory.ensemble.common.fit_gate` without regime
features: softmax-parametrised, so non-negative and summing to 1, minimising the weighted log
loss of the combined probabilities on the out-of-fold rows.

* :class:`SoftVoting`: the weighted mean of the models' probabilities.
* :class:`HardVoting`: each model casts one (weighted) vote for its argmax class. The
  probabilities are ``(1 - smoothing) * vote_share + smoothing * mean_probability``: the vote
  shares alone give 0 to a class nobody voted for (an infinite log loss when it happens) and
  cannot rank tied classes, so a small ``smoothing`` makes the argmax of the probabilities the
  majority vote with ties broken by the (weighted) mean probability. :meth:`HardVoting.predict`
  gives that exact winner for any ``smoothing``, 0 included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from factory.ensemble.common import (
    N_CLASSES,
    Combiner,
    as_labels,
    as_proba_stack,
    as_weights,
    fit_gate,
    softmax,
    true_class_proba,
)
from factory.errors import FactoryError

# Two vote shares closer than this are a tie (sums of float weights are not exact).
TIE_TOL = 1e-9


def resolve_weights(weights: Any, m: int) -> np.ndarray | None:
    """Fixed weights as a normalised ``(m,)`` array; None for ``"learned"``."""
    if weights == "learned":
        return None
    if weights is None:
        return np.full(m, 1.0 / m)
    if isinstance(weights, str):
        raise FactoryError(f"`ensemble.combiner.weights` must be null, 'learned' or a list of "
                           f"{m} numbers, got {weights!r}")
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != (m,) or not np.isfinite(arr).all() or arr.min() < 0 or arr.sum() <= 0:
        raise FactoryError(f"`ensemble.combiner.weights` must hold {m} non-negative numbers "
                           f"(one per base model) with a positive sum, got {weights!r}")
    return arr / arr.sum()


class _Voting(Combiner):
    def __init__(self, weights: Any = None, max_iter: int = 500) -> None:
        self.weights = weights
        self.max_iter = max_iter

    def _votes_true(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def check_models(self, m: int) -> None:
        """Fail before training when fixed weights do not give one per base model."""
        resolve_weights(self.weights, m)

    def fit(self, P: Any, y: Any, sample_weight: Any = None, R: Any = None) -> _Voting:
        """Fix or learn the weights; ``R`` is ignored."""
        P = as_proba_stack(P)
        y = as_labels(y, len(P))
        s = as_weights(sample_weight, len(P))
        fixed = resolve_weights(self.weights, P.shape[1])
        if fixed is None:
            a, _ = fit_gate(self._votes_true(P, y), None, s, 0.0, self.max_iter)
            fixed = softmax(a[None, :])[0]
        self.weights_ = fixed
        self.n_models_ = P.shape[1]
        return self

    def model_weights(self) -> np.ndarray:
        self._check_fitted()
        return self.weights_.copy()

    def _fitted_state(self) -> dict:
        return {"weights": self.weights_}

    def _load_fitted(self, fitted: dict) -> None:
        self.weights_ = np.asarray(fitted["weights"], dtype=np.float64)


class SoftVoting(_Voting):
    """Weighted mean of the base models' probabilities."""

    kind = "soft_voting"

    def _votes_true(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:
        return true_class_proba(P, y)

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        P = as_proba_stack(P, self.n_models_)
        return np.einsum("nmc,m->nc", P, self.weights_)


class HardVoting(_Voting):
    """Weighted majority of argmax votes; ``smoothing`` mixes in the mean probability."""

    kind = "hard_voting"

    def __init__(self, weights: Any = None, smoothing: float = 1e-3, max_iter: int = 500) -> None:
        super().__init__(weights=weights, max_iter=max_iter)
        self.smoothing = smoothing

    def _check_smoothing(self) -> float:
        eps = float(self.smoothing)
        if not 0.0 <= eps < 1.0:
            raise FactoryError(f"`ensemble.combiner.smoothing` must be in [0, 1), got "
                               f"{self.smoothing!r}")
        return eps

    def check_models(self, m: int) -> None:
        super().check_models(m)
        self._check_smoothing()

    def fit(self, P: Any, y: Any, sample_weight: Any = None, R: Any = None) -> HardVoting:
        self._check_smoothing()
        return super().fit(P, y, sample_weight=sample_weight, R=R)

    def _shares(self, P: np.ndarray, weights: np.ndarray) -> np.ndarray:
        onehot = np.eye(N_CLASSES)[P.argmax(axis=2)]  # (n, m, 3)
        return np.einsum("nmc,m->nc", onehot, weights)

    def _votes_true(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:
        # the smoothed probability of the realised class is linear in the weights: each model
        # contributes (1 - eps) * [its vote is right] + eps * its probability of the class
        eps = self._check_smoothing()
        right = (P.argmax(axis=2) == y[:, None]).astype(np.float64)
        return (1.0 - eps) * right + eps * true_class_proba(P, y)

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        eps = self._check_smoothing()
        P = as_proba_stack(P, self.n_models_)
        mean = np.einsum("nmc,m->nc", P, self.weights_)
        return (1.0 - eps) * self._shares(P, self.weights_) + eps * mean

    def predict(self, P: Any, R: Any = None) -> np.ndarray:
        """Class index 0/1/2: the weighted majority, ties broken by the mean probability."""
        self._check_fitted()
        P = as_proba_stack(P, self.n_models_)
        shares = self._shares(P, self.weights_)
        tied = shares >= shares.max(axis=1, keepdims=True) - TIE_TOL
        mean = np.einsum("nmc,m->nc", P, self.weights_)
        return np.where(tied, mean, -np.inf).argmax(axis=1)
