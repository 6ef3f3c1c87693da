"""The regime-aware meta-learner: a mixture of the base models gated by regime features.

Which model to trust depends on the market state: a trend model in trends, a mean-reversion
model in chop, a volatility-aware one in high vol. :class:`RegimeAwareMeta` learns exactly
that, as a mixture of experts with a linear softmax gate::

    p(y | P, R) = sum_k w_k(R) * q_k(y)        w(R) = softmax(a + A z(R))

``q_k`` are the base models' probabilities (optionally calibrated first, one-vs-rest, as in
the ``calibrated`` blender), ``z(R)`` the encoded regime features. ``a, A`` minimise the
weighted log loss plus ``l2 * ||A||^2`` (L-BFGS, analytic gradient, deterministic). Why this
and not a logistic on P x R interactions: the gate's output *is* the answer to "when to trust
which model" (per-row weights on the simplex, reported per regime), it has ``m (1 + d)``
parameters instead of ``3 m d``, and with ``A = 0`` it is exactly the learned soft vote, so the
penalty shrinks it towards a sensible ensemble rather than towards ignorance.

Encoding ``z(R)``: a column with few distinct integer values (``vol_regime_*``,
``trend_regime_*``, ``hmm_state``: at most ``max_levels``) is one-hot encoded, one gate offset
per level, because "trend up" and "trend down" need not sit on a line with "no trend"; other
columns (``hmm_p*``, ranks) are standardised with the training mean / std. A level unseen in
training encodes as all zeros (the gate's base weights). ``describe()`` reports the mean gate
weights over the training rows in each level (discrete columns) or tercile (continuous ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from factory.ensemble.calibration import apply_calibrators, crossfit, fit_calibrators
from factory.ensemble.common import (
    Combiner,
    as_labels,
    as_proba_stack,
    as_regimes,
    as_weights,
    fit_gate,
    softmax,
    true_class_proba,
)
from factory.errors import FactoryError

TERCILES = ("low", "mid", "high")


def fit_encoder(R: np.ndarray, max_levels: int) -> list[dict]:
    """Per column: ``{"levels": [...]}`` (one-hot) or ``{"mean", "std"}`` (standardised)."""
    spec = []
    for col in R.T:
        levels = np.unique(col)
        if len(levels) <= max_levels and np.array_equal(levels, np.round(levels)):
            spec.append({"levels": levels.tolist()})
        else:
            std = float(col.std())
            spec.append({"mean": float(col.mean()), "std": std if std > 0 else 1.0})
    return spec


def encode(R: np.ndarray, spec: list[dict]) -> np.ndarray:
    parts = []
    for col, enc in zip(R.T, spec, strict=True):
        if "levels" in enc:
            parts.append((col[:, None] == np.asarray(enc["levels"])[None, :]).astype(np.float64))
        else:
            parts.append(((col - enc["mean"]) / enc["std"])[:, None])
    return np.hstack(parts)


def encoded_names(names: list[str], spec: list[dict]) -> list[str]:
    out = []
    for name, enc in zip(names, spec, strict=True):
        out += [f"{name}={lvl:g}" for lvl in enc["levels"]] if "levels" in enc else [name]
    return out


class RegimeAwareMeta(Combiner):
    """Mixture of the base models with regime-dependent weights ``softmax(a + A z(R))``."""

    kind = "regime_aware"
    needs_regimes = True

    def __init__(self, l2: float = 0.01, calibration: str | None = None, folds: int = 5,
                 max_levels: int = 5, max_iter: int = 1000) -> None:
        self.l2 = l2
        self.calibration = calibration
        self.folds = folds
        self.max_levels = max_levels
        self.max_iter = max_iter

    def _regimes(self, R: Any, n: int) -> np.ndarray:
        arr, names = as_regimes(R, n)
        if arr.shape[1] != len(self.encoder_):
            raise FactoryError(f"ensemble: regime_aware was fitted on {len(self.encoder_)} regime "
                               f"columns but got {arr.shape[1]}; select the same columns")
        if names is not None and self.regime_names_fixed_ and names != self.regime_names_:
            raise FactoryError(f"ensemble: regime columns {names} differ from the fitted "
                               f"{self.regime_names_}; select the same columns in the same order")
        return encode(arr, self.encoder_)

    def fit(self, P: Any, y: Any, sample_weight: Any = None, R: Any = None) -> RegimeAwareMeta:
        if self.l2 < 0:
            raise FactoryError(f"`ensemble.combiner.l2` must be >= 0, "
                               f"got {self.l2}")
        P = as_proba_stack(P)
        y = as_labels(y, len(P))
        s = as_weights(sample_weight, len(P))
        arr, names = as_regimes(R, len(P))
        self.regime_names_fixed_ = names is not None
        self.regime_names_ = names or [f"regime_{j}" for j in range(arr.shape[1])]
        self.encoder_ = fit_encoder(arr, self.max_levels)
        Z = encode(arr, self.encoder_)
        Q = P
        self.calibrators_ = None
        if self.calibration is not None:
            Q = crossfit(P, y, s, self.calibration, self.folds, self.max_iter)
            self.calibrators_ = fit_calibrators(P, y, s, self.calibration, self.max_iter)
        self.gate_bias_, self.gate_coef_ = fit_gate(true_class_proba(Q, y), Z, s, self.l2,
                                                    self.max_iter)
        self.n_models_ = P.shape[1]
        gates = self._gates(Z)
        self.mean_weights_ = (gates * s[:, None]).sum(axis=0) / s.sum()
        self.profiles_ = self._profiles(arr, gates, s)
        return self

    def _gates(self, Z: np.ndarray) -> np.ndarray:
        return softmax(self.gate_bias_[None, :] + Z @ self.gate_coef_.T)

    def _profiles(self, R: np.ndarray, gates: np.ndarray, s: np.ndarray) -> list[dict]:
        """Mean gate weights per level (discrete column) or tercile (continuous column)."""
        out = []
        for j, (col, enc) in enumerate(zip(R.T, self.encoder_, strict=True)):
            if "levels" in enc:
                groups = [(f"{lvl:g}", col == lvl) for lvl in enc["levels"]]
            else:
                cuts = np.quantile(col, [1 / 3, 2 / 3])
                bins = np.searchsorted(cuts, col, side="left")
                groups = [(TERCILES[b], bins == b) for b in range(3)]
            for label, mask in groups:
                if s[mask].sum() > 0:
                    w = (gates[mask] * s[mask, None]).sum(axis=0) / s[mask].sum()
                    out.append({"column": self.regime_names_[j], "value": label,
                                "share": float(mask.mean()), "weights": w.tolist()})
        return out

    def gate_weights(self, R: Any) -> np.ndarray:
        """``(n, m)`` per-row model weights for regime features ``R``."""
        self._check_fitted()
        return self._gates(self._regimes(R, 0 if R is None else len(R)))

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        P = as_proba_stack(P, self.n_models_)
        Q = P if self.calibrators_ is None else apply_calibrators(P, self.calibrators_)
        return np.einsum("nm,nmc->nc", self._gates(self._regimes(R, len(P))), Q)

    def model_weights(self) -> np.ndarray:
        self._check_fitted()
        return self.mean_weights_.copy()

    def _details(self, names: list[str]) -> dict:
        by_regime: dict[str, dict] = {}
        for p in self.profiles_:
            by_regime.setdefault(p["column"], {})[p["value"]] = {
                "share": p["share"], **dict(zip(names, p["weights"], strict=True))}
        features = encoded_names(self.regime_names_, self.encoder_)
        coef = pd.DataFrame(self.gate_coef_, index=names, columns=features)
        return {"by_regime": by_regime, "gate_bias": dict(zip(names, self.gate_bias_.tolist(),
                                                              strict=True)),
                "gate_coef": coef.to_dict(orient="index"), "calibration": self.calibration}

    def _fitted_state(self) -> dict:
        return {"regime_names": self.regime_names_, "regime_names_fixed": self.regime_names_fixed_,
                "encoder": self.encoder_, "gate_bias": self.gate_bias_,
                "gate_coef": self.gate_coef_, "calibrators": self.calibrators_,
                "mean_weights": self.mean_weights_, "profiles": self.profiles_}

    def _load_fitted(self, fitted: dict) -> None:
        self.regime_names_ = list(fitted["regime_names"])
        self.regime_names_fixed_ = bool(fitted["regime_names_fixed"])
        self.encoder_ = fitted["encoder"]
        self.gate_bias_ = np.asarray(fitted["gate_bias"], dtype=np.float64)
        self.gate_coef_ = np.asarray(fitted["gate_coef"], dtype=np.float64).reshape(
            len(self.gate_bias_), -1)
        self.calibrators_ = fitted["calibrators"]
        self.mean_weights_ = np.asarray(fitted["mean_weights"], dtype=np.float64)
        self.profiles_ = fitted["profiles"]
