"""Triple-barrier class probabilities from quantile forecasts of the price path.

A zero-shot forecaster gives, for each row and each future bar ``k = 1..H``, quantiles of the
cumulative log return ``R_k = log(close_{t+k} / close_t)`` at fixed levels. The label asks a
*path* question: which barrier, ``U = log(1 + barrier_up)`` or ``D = log(1 - barrier_dn)``,
does the price reach first within ``H`` bars? Marginal quantiles per step do not determine
the joint law of the path, so an assumption is needed. The one made here:

**Brownian dependence, forecast marginals (a Gaussian copula of Brownian motion).**
Each step's marginal CDF ``F_k`` is the forecast itself: quantiles are interpolated linearly
in normal-score space ``z = Phi^-1(level)`` and extrapolated linearly beyond the outer
levels (exact for Gaussian marginals; it keeps the forecast's skew and tail width). A path
is ``R_k = F_k^-1(Phi(W(tau_k) / sqrt(tau_k)))`` with ``W`` a standard Brownian motion and
``tau_k`` the forecast variance at step k (``sigma_k^2``, the least-squares slope of the
quantiles on ``z``, made increasing). Every step then has exactly the forecast marginal, and
steps are correlated like a random walk (``corr = sqrt(tau_j / tau_k)``). When the forecast
is Gaussian with drift ``mu`` and volatility ``sigma`` per bar, the path is *exactly*
Brownian motion with that drift sampled at the bars, so the result converges to the
closed-form first-passage probabilities (the unit tests check this).

The map from ``W`` to ``R`` is increasing, so ``R_k >= U`` is ``W(tau_k) >= b_k`` with
``b_k = sqrt(tau_k) Phi^-1(F_k(U))``: each barrier becomes one boundary value per step for
the Brownian motion, and the simulation never needs the return paths themselves.

**First passage between bars (continuous monitoring).** The labeler watches highs and lows,
so a barrier can be touched between two closes. The boundary is interpolated linearly
between bars, and a Brownian bridge from ``a`` to ``b`` over variance ``v`` crosses a linear
boundary ``c0 -> c1`` with probability ``exp(-2 (c0 - a)(c1 - b) / v)`` (exact for Gaussian
forecasts; an interpolation otherwise). Instead of drawing crossings, each path carries its
survival probability (Rao-Blackwellisation: less Monte-Carlo noise); a step where both
barriers may be crossed splits the hit in proportion to the two crossing probabilities.
``monitoring="discrete"`` checks closes only.

**Costs and the vertical barrier** follow :mod:`factory.labeling.triple_barrier`: an upper
touch is a +1 only when ``barrier_up`` clears the round-trip cost (the long fill is at the
barrier), a lower touch a -1 only when ``barrier_dn`` does; at the vertical barrier the label
is 0 (``vertical="zero"``) or the sign of the net return when it clears the cost (``"sign"``).
Barriers are measured from ``close_t`` (the label's entry is the next open, one tick away on
liquid futures).

The Monte-Carlo normals are common random numbers (one seeded antithetic draw shared by all
rows), so results do not depend on batching and a symmetric forecast gives exactly
``p_long == p_short``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.special import ndtri

from factory.errors import FactoryError

MONITORING = ("continuous", "discrete")
VERTICAL = ("zero", "sign")
_TINY_VAR = 1e-18
_GRID = 1024  # quantile levels averaged for the expected return


def normal_scores(levels) -> np.ndarray:
    """``Phi^-1`` of the quantile levels; checks they are strictly increasing in (0, 1)."""
    levels = np.asarray(levels, np.float64)
    if levels.ndim != 1 or len(levels) < 2 or not ((levels > 0) & (levels < 1)).all() \
            or not (np.diff(levels) > 0).all():
        raise FactoryError(f"`model.quantile_levels` must be >= 2 strictly increasing levels "
                           f"in (0, 1), got {levels.tolist()}")
    return ndtri(levels)


def _step_variance(q: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``tau_k`` (the variance implied by each step's quantiles, made increasing) and its
    increments ``v_k`` (floored at a tiny fraction of the total so that none is zero)."""
    zc = z - z.mean()
    sigma = (q * zc).sum(axis=-1) / (zc @ zc)  # least-squares slope of q on z, (n, H)
    tau = np.maximum.accumulate(np.maximum(sigma, 0.0) ** 2, axis=1)
    floor = np.maximum(tau[:, -1:], _TINY_VAR) * 1e-9
    step_var = np.maximum(np.diff(tau, axis=1, prepend=0.0), floor)
    return np.cumsum(step_var, axis=1), step_var


def _inverse_cdf(q: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``F^-1(Phi(y))``: piecewise linear in normal scores, per row.

    q: (n, Q) sorted quantiles; z: (Q,) knots; y: (n, G) normal scores -> (n, G). Beyond the
    outer knots the outer segment's slope continues (linear extrapolation).
    """
    seg = np.clip(np.searchsorted(z, y, side="right") - 1, 0, len(z) - 2)
    slope = np.diff(q, axis=-1) / np.diff(z)
    lo = np.take_along_axis(q, seg, axis=-1)
    return lo + np.take_along_axis(slope, seg, axis=-1) * (y - z[seg])


def _scores(q: np.ndarray, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``Phi^-1(F_k(x))``, the inverse of :func:`_inverse_cdf` at every step.

    q: (n, H, Q) sorted; x: (n, 1) -> (n, H); +-inf beyond a flat (zero-width) tail.
    """
    seg = np.clip((q < x[..., None]).sum(axis=-1) - 1, 0, len(z) - 2)[..., None]
    lo = np.take_along_axis(q, seg, axis=-1)[..., 0]
    hi = np.take_along_axis(q, seg + 1, axis=-1)[..., 0]
    seg = seg[..., 0]
    width = hi - lo
    inside = z[seg] + (x - lo) * (z[seg + 1] - z[seg]) / np.where(width > 0, width, 1.0)
    flat = np.where(x > lo, np.inf, np.where(x < lo, -np.inf, z[seg]))
    return np.where(width > 0, inside, flat)


@njit(cache=True, nogil=True)
def _first_passage(b_up, b_dn, sd, coef, normals, win_long, win_short, sign_vertical,
                   continuous):  # pragma: no cover (compiled)
    """Per row: mean over paths of P(up first), P(down first), and, with ``sign_vertical``,
    P(no touch and a net win at the vertical barrier) for long / short -> (n, 4).

    b_up/b_dn: (n, H+1) boundaries for W at times 0..H; sd: (n, H) step standard deviations;
    coef: (n, H) = -2 / step variance; normals: (S, H). Each path carries the probability
    that it is still alive (Rao-Blackwellised bridge crossings, see the module docstring).
    """
    n, h = sd.shape
    n_paths = normals.shape[0]
    out = np.zeros((n, 4))
    for i in range(n):
        for s in range(n_paths):
            alive, w = 1.0, 0.0
            gap_up, gap_dn = b_up[i, 0], -b_dn[i, 0]
            for k in range(h):
                w += sd[i, k] * normals[s, k]
                next_up, next_dn = b_up[i, k + 1] - w, w - b_dn[i, k + 1]
                if next_up <= 0.0 or (continuous and gap_up <= 0.0):
                    cu = 1.0
                elif continuous:
                    e = coef[i, k] * gap_up * next_up
                    cu = np.exp(e) if e > -40.0 else 0.0  # below 4e-18: skip the exp
                else:
                    cu = 0.0
                if next_dn <= 0.0 or (continuous and gap_dn <= 0.0):
                    cd = 1.0
                elif continuous:
                    e = coef[i, k] * gap_dn * next_dn
                    cd = np.exp(e) if e > -40.0 else 0.0  # below 4e-18: skip the exp
                else:
                    cd = 0.0
                hit = 1.0 - (1.0 - cu) * (1.0 - cd)
                if hit > 0.0:  # split a step's hit in proportion to the two crossings
                    out[i, 0] += alive * hit * cu / (cu + cd)
                    out[i, 1] += alive * hit * cd / (cu + cd)
                    alive *= 1.0 - hit
                    if alive < 1e-12:
                        break
                gap_up, gap_dn = next_up, next_dn
            if sign_vertical:
                if w > win_long[i]:
                    out[i, 2] += alive
                elif w < win_short[i]:
                    out[i, 3] += alive
    return out / n_paths


def _probabilities(q, z, up, dn, cost, normals, vertical, continuous) -> np.ndarray:
    """Probabilities for rows (see the module docstring)."""
    tau, step_var = _step_variance(q, z)
    scale = np.sqrt(tau)
    upper, lower = np.log1p(up)[:, None], np.log1p(-dn)[:, None]
    # boundaries for W at times 0..H (at time 0, R = W = 0: the barrier itself)
    b_up = np.concatenate([upper, scale * _scores(q, z, upper)], axis=1)
    b_dn = np.concatenate([lower, scale * _scores(q, z, lower)], axis=1)
    last = q[:, -1:, :]
    win_long = (scale[:, -1:] * _scores(last, z, np.log1p(cost)[:, None]))[:, 0]
    win_short = (scale[:, -1:] * _scores(last, z, np.log1p(-cost)[:, None]))[:, 0]
    res = _first_passage(b_up, b_dn, np.sqrt(step_var), -2.0 / step_var, normals, win_long,
                         win_short, vertical == "sign", continuous)
    p_long = res[:, 0] * (up > cost) + res[:, 2]  # a touch is a label only net of the cost
    p_short = res[:, 1] * (dn > cost) + res[:, 3]
    return np.column_stack([p_short, 1.0 - p_short - p_long, p_long])


def barrier_probabilities(
    quantiles: np.ndarray,
    levels,
    barrier_up: np.ndarray,
    barrier_dn: np.ndarray,
    cost: np.ndarray,
    *,
    vertical: str = "zero",
    monitoring: str = "continuous",
    n_paths: int = 512,
    seed: int = 0,
) -> np.ndarray:
    """(n, 3) probabilities of labels (-1, 0, +1) from (n, H, Q) log-return quantiles.

    ``barrier_up``/``barrier_dn``/``cost`` are returns on ``close_t`` (Dataset meta columns).
    The path loop is compiled (numba): no (rows x paths x steps) array is materialised.
    """
    if vertical not in VERTICAL:
        raise FactoryError(f"`model.vertical` must be one of {VERTICAL}, got {vertical!r}")
    if monitoring not in MONITORING:
        raise FactoryError(f"`model.monitoring` must be one of {MONITORING}, got {monitoring!r}")
    if int(n_paths) < 2:
        raise FactoryError(f"`model.n_paths` must be >= 2, got {n_paths!r}")
    q = np.sort(np.asarray(quantiles, np.float64), axis=-1)  # repair any quantile crossing
    z = normal_scores(levels)
    if q.ndim != 3 or q.shape[-1] != len(z):
        raise ValueError(f"quantiles must be (n, H, {len(z)}), got {q.shape}")
    n, h, _ = q.shape
    half = np.random.default_rng(seed).standard_normal((int(n_paths) // 2, h))
    normals = np.concatenate([half, -half])  # antithetic: symmetric forecasts stay symmetric
    up = np.asarray(barrier_up, np.float64)
    dn = np.clip(np.asarray(barrier_dn, np.float64), 0.0, 1.0 - 1e-12)
    cost = np.asarray(cost, np.float64)
    out = np.clip(_probabilities(q, z, up, dn, cost, normals, vertical,
                                 monitoring == "continuous"), 0.0, None)
    return out / out.sum(axis=1, keepdims=True)


def expected_return(quantiles: np.ndarray, levels) -> np.ndarray:
    """Mean simple return ``E[exp(R_H)] - 1`` over the horizon, from the last step's quantiles.

    The mean of a distribution is the integral of its quantile function; it is taken on a
    midpoint grid of levels with the same interpolation/extrapolation as the path model.
    Gross of costs (the cost is known and the same whatever the forecast).
    """
    q = np.sort(np.asarray(quantiles, np.float64)[:, -1, :], axis=-1)
    z = normal_scores(levels)
    grid = ndtri((np.arange(_GRID) + 0.5) / _GRID)
    values = _inverse_cdf(q, z, np.broadcast_to(grid, (len(q), _GRID)))
    return np.expm1(values).mean(axis=1)


def confidence(proba: np.ndarray) -> np.ndarray:
    """Margin between the two most likely classes, in [0, 1].

    0 when the forecast cannot tell the top two outcomes apart, 1 when one outcome is
    certain. It measures how decisive the forecast is *relative to the barriers*, which a
    quantile width alone does not (a wide forecast with far barriers is still decisive).
    """
    top2 = np.sort(np.asarray(proba, np.float64), axis=1)[:, -2:]
    return np.clip(top2[:, 1] - top2[:, 0], 0.0, 1.0)
