"""Portfolio risk arithmetic: shrunk covariance, risk contributions, allocation rules.

All functions take plain arrays (``returns``: rows = periods, columns = instruments;
``cov``: ``(n, n)``) and know nothing about time; :mod:`factory.portfolio.sizing` feeds them
only returns that ended before the decision they size.

* **Covariance**: Ledoit-Wolf or OAS shrinkage toward a scaled identity (scikit-learn's
  ``ledoit_wolf`` / ``oas``), or the sample covariance.
* **Risk contributions** (Euler): ``RC_i = w_i (Σw)_i / σ(w)``, with ``σ(w) = sqrt(w'Σw)``;
  they sum to ``σ(w)`` exactly (homogeneity of degree one).
* **Equal risk contribution** (ERC, "risk parity"): the weights whose contributions are all
  equal, from the convex problem of Spinu (2013), ``min_y ½ y'Σy - (1/n) Σ log y_i``, whose
  optimum has ``y_i (Σy)_i = 1/n`` for every ``i``; solved by Newton's method with a
  positivity-keeping line search (a dozen iterations to machine precision for the handful of
  instruments of a book), then ``w = y / Σy``. Hand-written because the alternatives
  (skfolio, riskfolio) bring a conic solver for what is a ten-line Newton loop here.
* **Inverse volatility**: ``w_i ∝ 1 / σ_i``; **equal weight**: ``w_i = 1 / n``.
"""

from __future__ import annotations

import numpy as np

from factory.errors import FactoryError

SHRINKAGE = ("ledoit_wolf", "oas", "none")
METHODS = ("equal", "inverse_vol", "erc")


def shrunk_covariance(returns: np.ndarray, shrinkage: str = "ledoit_wolf") -> np.ndarray:
    """Covariance of ``returns`` (periods x instruments), shrunk as asked."""
    from sklearn.covariance import empirical_covariance, ledoit_wolf, oas

    x = np.asarray(returns, np.float64)
    if shrinkage == "ledoit_wolf":
        return ledoit_wolf(x)[0]
    if shrinkage == "oas":
        return oas(x)[0]
    if shrinkage == "none":
        return empirical_covariance(x)
    raise FactoryError(f"`portfolio.covariance.shrinkage` must be one of {SHRINKAGE}, got "
                       f"{shrinkage!r}")


def correlation(cov: np.ndarray) -> np.ndarray:
    """The correlation matrix of a covariance (zero where a variance is zero)."""
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cov / np.outer(sd, sd)
    out = np.where(np.isfinite(out), out, 0.0)
    np.fill_diagonal(out, 1.0)
    return out


def portfolio_vol(w: np.ndarray, cov: np.ndarray) -> float:
    """``sqrt(w' Σ w)`` (in the units of ``cov``'s period)."""
    w = np.asarray(w, np.float64)
    return float(np.sqrt(max(w @ cov @ w, 0.0)))


def risk_contributions(w: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Euler risk contributions ``w_i (Σw)_i / σ(w)``: they sum to ``σ(w)`` (zeros when flat)."""
    w = np.asarray(w, np.float64)
    vol = portfolio_vol(w, cov)
    if vol == 0.0:
        return np.zeros_like(w)
    return w * (cov @ w) / vol


def erc_weights(cov: np.ndarray, tol: float = 1e-24, max_iter: int = 100) -> np.ndarray:
    """Long-only weights (summing to 1) with equal risk contributions under ``cov``.

    Newton stops when half the squared Newton decrement (the objective's distance to its
    optimum, scale-free) is below ``tol``: the contributions are then equal to machine
    precision. ``cov`` is rescaled to unit mean variance first (the weights do not change)."""
    cov = np.asarray(cov, np.float64)
    n = len(cov)
    var = np.diag(cov)
    if n == 0 or not np.all(np.isfinite(cov)) or np.any(var <= 0):
        raise FactoryError(f"ERC needs a covariance with positive, finite variances; got "
                           f"variances {np.round(var, 12).tolist()}")
    cov = cov / var.mean()
    var = np.diag(cov)
    b = np.full(n, 1.0 / n)
    y = 1.0 / np.sqrt(var)
    y *= np.sqrt(1.0 / (y @ cov @ y))  # a sensible start: inverse vol at unit variance

    def objective(v: np.ndarray) -> float:
        return 0.5 * v @ cov @ v - b @ np.log(v)

    f = objective(y)
    for _ in range(max_iter):
        grad = cov @ y - b / y
        hess = cov + np.diag(b / y**2)
        step = np.linalg.solve(hess, grad)
        decrement = float(grad @ step)
        if decrement / 2.0 <= tol:
            break
        t = 1.0
        while np.any(y - t * step <= 0):  # stay in the domain (log y)
            t *= 0.5
        while objective(y - t * step) > f - 0.25 * t * decrement and t > 1e-3:
            t *= 0.5  # Armijo backtracking
        if t <= 1e-3 and decrement < 1e-12:
            break  # no decrease left to measure: at the optimum to rounding
        y = y - t * step
        f = objective(y)
    return y / y.sum()


def inverse_vol_weights(cov: np.ndarray) -> np.ndarray:
    """``w_i ∝ 1 / σ_i`` (summing to 1)."""
    sd = np.sqrt(np.diag(np.asarray(cov, np.float64)))
    if np.any(~np.isfinite(sd)) or np.any(sd <= 0):
        raise FactoryError(f"inverse-volatility weights need positive variances; got "
                           f"volatilities {np.round(sd, 12).tolist()}")
    inv = 1.0 / sd
    return inv / inv.sum()


def allocate(method: str, cov: np.ndarray) -> np.ndarray:
    """Weights summing to 1 by ``method`` (equal | inverse_vol | erc)."""
    if method == "equal":
        return np.full(len(cov), 1.0 / len(cov))
    if method == "inverse_vol":
        return inverse_vol_weights(cov)
    if method == "erc":
        return erc_weights(cov)
    raise FactoryError(f"`portfolio.sizing` must be one of {METHODS}, got {method!r} (try "
                       "`portfolio.sizing=erc`)")
