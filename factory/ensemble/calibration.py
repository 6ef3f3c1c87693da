"""Per-base-model probability calibration, one-vs-rest per class, then renormalised.

Base models of different families are calibrated differently (boosting over-confident, a
regularised logistic under-confident), so a blender that averages them should first put
them on one scale. For each model ``k`` and class ``c`` a 1-D map ``p_kc -> P(y = c)`` is fitted
on the out-of-fold rows; the three calibrated numbers of a row are floored at
:data:`~factory.ensemble.common.EPS` and renormalised to sum 1.

* ``isotonic``: monotone step function (scikit-learn ``IsotonicRegression``), applied as the
  linear interpolation between its thresholds (clipped at the ends), exactly what
  scikit-learn does, so the fitted state is just the threshold arrays.
* ``platt``: ``sigmoid(a * logit(p) + b)``; all ``3 m`` pairs ``(a, b)`` are fitted jointly in
  one vectorised L-BFGS run (the loss is separable), starting from the identity ``a=1, b=0``.

:func:`crossfit` produces calibrated probabilities for rows the calibrators never saw
(contiguous blocks, like the out-of-fold predictions themselves): weights learned on
in-sample isotonic output would favour whichever model isotonic over-fits most.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from factory.ensemble.common import EPS, N_CLASSES
from factory.errors import FactoryError

METHODS = ("isotonic", "platt")
# A whisker of ridge pull towards the identity map keeps (a, b) finite when a class is
# absent from a fold (its Platt intercept would otherwise run off towards -inf).
PLATT_RIDGE = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _fit_isotonic(P: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict:
    from sklearn.isotonic import IsotonicRegression

    xs, ys = [], []
    for k in range(P.shape[1]):
        row_x, row_y = [], []
        for c in range(N_CLASSES):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(P[:, k, c], (y == c).astype(np.float64), sample_weight=s)
            row_x.append(iso.X_thresholds_.astype(np.float64))
            row_y.append(iso.y_thresholds_.astype(np.float64))
        xs.append(row_x)
        ys.append(row_y)
    return {"method": "isotonic", "x": xs, "y": ys}


def _fit_platt(P: np.ndarray, y: np.ndarray, s: np.ndarray, max_iter: int) -> dict:
    n, m, _ = P.shape
    X = _logit(P)  # (n, m, 3)
    T = (y[:, None] == np.arange(N_CLASSES)[None, :]).astype(np.float64)[:, None, :]
    w = (s / s.sum())[:, None, None]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta[: m * N_CLASSES].reshape(m, N_CLASSES), theta[m * N_CLASSES:].reshape(m, -1)
        z = a * X + b
        # stable binary cross-entropy: log(1 + e^z) - t z
        loss = (w * (np.logaddexp(0.0, z) - T * z)).sum()
        r = w * (1.0 / (1.0 + np.exp(-z)) - T)
        ga, gb = (r * X).sum(axis=0), r.sum(axis=0)
        loss += PLATT_RIDGE * (((a - 1.0) ** 2).sum() + (b ** 2).sum())
        ga, gb = ga + 2 * PLATT_RIDGE * (a - 1.0), gb + 2 * PLATT_RIDGE * b
        return float(loss), np.concatenate([ga.ravel(), gb.ravel()])

    theta0 = np.concatenate([np.ones(m * N_CLASSES), np.zeros(m * N_CLASSES)])
    res = minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    a, b = res.x[: m * N_CLASSES].reshape(m, -1), res.x[m * N_CLASSES:].reshape(m, -1)
    return {"method": "platt", "a": a, "b": b}


def fit_calibrators(P: np.ndarray, y: np.ndarray, s: np.ndarray, method: str,
                    max_iter: int = 500) -> dict:
    """Fit the ``3 m`` one-vs-rest calibrators; the result is JSON-able (lists of floats)."""
    if method == "isotonic":
        return _fit_isotonic(P, y, s)
    if method == "platt":
        return _fit_platt(P, y, s, max_iter)
    raise FactoryError(f"ensemble calibration method must be one of {METHODS}, got {method!r} "
                       f"(key `method` / `calibration` of the meta-learner's params)")


def apply_calibrators(P: np.ndarray, cal: dict) -> np.ndarray:
    """Calibrated, renormalised ``(n, m, 3)`` probabilities."""
    if cal["method"] == "platt":
        a, b = np.asarray(cal["a"]), np.asarray(cal["b"])
        out = 1.0 / (1.0 + np.exp(-(a * _logit(P) + b)))
    else:
        out = np.empty_like(P)
        for k in range(P.shape[1]):
            for c in range(N_CLASSES):
                xp = np.asarray(cal["x"][k][c], dtype=np.float64)
                fp = np.asarray(cal["y"][k][c], dtype=np.float64)
                out[:, k, c] = np.interp(P[:, k, c], xp, fp)
    out = np.maximum(out, EPS)
    return out / out.sum(axis=2, keepdims=True)


def crossfit(P: np.ndarray, y: np.ndarray, s: np.ndarray, method: str, folds: int,
             max_iter: int = 500) -> np.ndarray:
    """Calibrated probabilities of each contiguous block from calibrators fitted on the others.

    ``folds <= 1`` calibrates in sample (cheaper, optimistic for isotonic).
    """
    if folds <= 1:
        return apply_calibrators(P, fit_calibrators(P, y, s, method, max_iter))
    out = np.empty_like(P)
    for block in np.array_split(np.arange(len(P)), folds):
        rest = np.ones(len(P), dtype=bool)
        rest[block] = False
        cal = fit_calibrators(P[rest], y[rest], s[rest], method, max_iter)
        out[block] = apply_calibrators(P[block], cal)
    return out
