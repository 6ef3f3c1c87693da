"""Fixed-width-window fractional differentiation of log close (Lopez de Prado, *Advances in
Financial Machine Learning*, ch. 5) and the choice of ``d`` by an ADF test.

Weights: ``w_0 = 1``, ``w_k = -w_{k-1} (d - k + 1) / k``, kept while ``|w_k| >= threshold``
and for at most ``window`` taps (``K`` weights). The feature at bar t is
``sum_{k<K} w_k log(c_{t-k})`` - a causal convolution (``np.convolve``, mode "valid"), so it
uses bars <= t only. ``d = 1`` gives the first difference (``w = [1, -1]``), ``d = 0`` the
log price itself. The fracdiff'd series crosses session breaks unchanged: the point is to
keep the memory of the price level.

Group (warm-up = leading bars left undefined, as a function of the resolved params):

* ``fracdiff`` -> ``ffd_d{d}_w{window}`` (the dot of ``d`` written ``p``, e.g.
  ``ffd_d0p4_w100``). Warm-up: ``K - 1 = len(fracdiff_weights(d, window, threshold)) - 1``
  (99 for the defaults d=0.4, window=100, threshold=1e-5).

Choosing d: :func:`choose_d` returns the smallest ``d`` of a grid whose fracdiff'd series
rejects a unit root in an augmented Dickey-Fuller test. It must see **training bars only**
(one symbol's training log closes, in time order); the lead's Phase 1 wires it, passing the
result as this group's ``d`` for every split's features. statsmodels is not a dependency, so
the ADF regression ``dy_t = a + b y_{t-1} + sum_{i=1..lags} c_i dy_{t-i} + e_t`` is solved with
numpy least squares and the t-statistic of ``b`` compared with MacKinnon's (2010) response
surface critical value for the constant-only case (5%: ``-2.86154 - 2.8903/T - 4.234/T^2
- 40.040/T^3``, about -2.86 for large T).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from factory.features.catalog.temporal import log_price
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import GroupStream

DEFAULT_D_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # 0.0, 0.05, ..., 1.0

# MacKinnon (2010), Table 2, tau_c, N = 1: beta_inf, beta_1, beta_2, beta_3 per level.
MACKINNON_TAU_C = {
    0.01: (-3.43035, -6.5393, -16.786, -79.433),
    0.05: (-2.86154, -2.8903, -4.234, -40.040),
    0.10: (-2.56677, -1.5384, -2.809, 0.0),
}


def fracdiff_weights(d: float, window: int = 100, threshold: float = 1e-5) -> np.ndarray:
    """FFD weights ``w_0 .. w_{K-1}``, truncated at the first ``|w_k| < threshold`` or at
    ``window`` taps."""
    window = int(window)
    if window < 1:
        raise ValueError(f"fracdiff: window must be >= 1, got {window}")
    k = np.arange(1, window, dtype=np.float64)
    weights = np.concatenate([[1.0], np.cumprod(-(float(d) - k + 1.0) / k)])
    small = np.abs(weights) < threshold
    return weights[: int(np.argmax(small))] if small.any() else weights


def fracdiff_series(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_k w_k x_{t-k}`` at every t (NaN for the first ``K - 1`` positions)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.size, np.nan)
    k = weights.size
    if x.size >= k:
        out[k - 1:] = np.convolve(x, weights, mode="valid")
    return out


def _tag(d: float) -> str:
    return f"{float(d):g}".replace(".", "p").replace("-", "m")


@register(warmup=lambda d, window, threshold: fracdiff_weights(d, window, threshold).size - 1,
          category="stationarity")
def fracdiff(bars: pd.DataFrame, d: float = 0.4, window: int = 100,
             threshold: float = 1e-5) -> Columns:
    """Fixed-width-window fractionally differentiated log close."""
    weights = fracdiff_weights(d, window, threshold)
    logc = log_price(bars["close"].to_numpy(np.float64))
    return {f"ffd_d{_tag(d)}_w{int(window)}": fracdiff_series(logc, weights)}


@streaming(fracdiff)
class _FracdiffStream(GroupStream):
    """The batch convolution on exactly the last ``K`` log closes (one dot product)."""

    @classmethod
    def lookback(cls, d, window, threshold) -> int:
        return fracdiff_weights(d, window, threshold).size

    def step(self, b) -> dict[str, float]:
        p = self.p
        weights = fracdiff_weights(p["d"], p["window"], p["threshold"])
        value = fracdiff_series(b.last("logc", weights.size), weights)[-1]
        return {f"ffd_d{_tag(p['d'])}_w{int(p['window'])}": value}


def mackinnon_critical_value(nobs: int, pvalue: float = 0.05) -> float:
    """ADF critical value (constant, no trend) at ``pvalue`` in {0.01, 0.05, 0.10}."""
    key = min(MACKINNON_TAU_C, key=lambda p: abs(p - pvalue))
    if abs(key - pvalue) > 1e-9:
        raise ValueError(f"choose_d: pvalue must be one of {sorted(MACKINNON_TAU_C)}, "
                         f"got {pvalue}")
    b0, b1, b2, b3 = MACKINNON_TAU_C[key]
    t = float(nobs)
    return b0 + b1 / t + b2 / t**2 + b3 / t**3


def adf_tstat(y: np.ndarray, lags: int = 1) -> tuple[float, int]:
    """ADF t-statistic of ``b`` in ``dy_t = a + b y_{t-1} + sum c_i dy_{t-i} + e`` and the
    number of regression rows. Regressors are demeaned (same t-statistic, better conditioning)."""
    y = np.asarray(y, dtype=np.float64)
    y = y[np.isfinite(y)]
    dy = np.diff(y)
    nobs = dy.size - lags
    if nobs < lags + 10:
        raise ValueError(f"adf_tstat: {y.size} values are too few for {lags} lags")
    target = dy[lags:]
    cols = [y[lags:-1]] + [dy[lags - i: dy.size - i] for i in range(1, lags + 1)]
    x = np.column_stack([np.ones(nobs)] + [c - c.mean() for c in cols])
    coef, _, rank, _ = np.linalg.lstsq(x, target, rcond=None)
    resid = target - x @ coef
    dof = nobs - x.shape[1]
    sigma2 = float(resid @ resid) / dof
    xtx_inv = np.linalg.pinv(x.T @ x)
    se = np.sqrt(sigma2 * xtx_inv[1, 1])
    if rank < x.shape[1] or not se > 0:
        return (-np.inf if sigma2 == 0 else np.nan), nobs  # a constant series is stationary
    return float(coef[1] / se), nobs


def choose_d(log_close_train: np.ndarray, d_grid: Sequence[float] = DEFAULT_D_GRID,
             pvalue: float = 0.05, window: int = 100, threshold: float = 1e-5,
             lags: int = 1) -> float:
    """Smallest ``d`` in ``d_grid`` whose FFD series of ``log_close_train`` rejects a unit root
    (ADF t-statistic below the MacKinnon critical value at ``pvalue``); ``max(d_grid)`` when
    none does. Call it on TRAINING bars only (one symbol, time order): the chosen d then
    parametrises the ``fracdiff`` group for every split."""
    x = np.asarray(log_close_train, dtype=np.float64)
    grid = sorted(float(d) for d in d_grid)
    if not grid:
        raise ValueError("choose_d: d_grid is empty")
    for d in grid:
        weights = fracdiff_weights(d, window, threshold)
        series = fracdiff_series(x, weights)[weights.size - 1:]
        stat, nobs = adf_tstat(series, lags)
        if stat < mackinnon_critical_value(nobs, pvalue):
            return d
    return grid[-1]
