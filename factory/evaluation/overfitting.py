"""Backtest-overfitting statistics: PBO (CSCV), the probabilistic and deflated Sharpe ratios.

Units. Every Sharpe ratio here is **per observation** and **not annualised**: mean / standard
deviation of the return series the statistic is about (per 5-minute bar, per day, per
trade...), with ``n_obs`` observations of that same unit. The moments in the PSR/DSR
variance term (``skew``, ``kurtosis``) are those of the same per-observation returns, and
``kurtosis`` is Pearson's (3 for a normal distribution), not the excess kurtosis that
``scipy.stats.kurtosis`` returns by default (add 3). Convert an annualised Sharpe with
:func:`per_period_sharpe` (divide by ``sqrt(periods_per_year)``; the backtest annualises
5-minute bars with 252 x 276 bars a year) and the variance of annualised trial Sharpes with
:func:`per_period_sharpe_variance` (divide by ``periods_per_year``).

References: Bailey, Borwein, López de Prado, Zhu (2015), "The probability of backtest
overfitting", J. Computational Finance; Bailey & López de Prado (2012), "The Sharpe ratio
efficient frontier" (PSR); Bailey & López de Prado (2014), "The deflated Sharpe ratio".
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
from scipy.stats import norm

from factory.errors import FactoryError

EULER_GAMMA = 0.5772156649015329
METRICS = ("sharpe", "mean")
MAX_COMBINATIONS = 1_000_000


@dataclass
class PBOResult:
    """CSCV outcome; arrays have one entry per combination of in-sample partitions."""

    pbo: float  # share of combinations whose in-sample winner ranks <= median out of sample
    logits: np.ndarray  # lambda_c = log(omega_c / (1 - omega_c))
    relative_rank: np.ndarray  # omega_c = OOS rank of the IS winner / (n_strategies + 1)
    selected: np.ndarray  # strategy chosen in sample (first on ties)
    is_performance: np.ndarray  # its in-sample performance
    oos_performance: np.ndarray  # its out-of-sample performance
    n_combinations: int


def _performance(s1: np.ndarray, s2: np.ndarray, n: np.ndarray, metric: str) -> np.ndarray:
    mean = s1 / n
    if metric == "mean":
        return mean
    var = (s2 - n * mean**2) / np.maximum(n - 1, 1)
    std = np.sqrt(np.maximum(var, 0.0))
    flat = np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, 0.0))  # zero variance
    return np.where(std > 0, mean / np.where(std > 0, std, 1.0), flat)


def probability_of_backtest_overfitting(performance: np.ndarray, n_partitions: int = 16,
                                        metric: str = "sharpe") -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    ``performance`` is ``(n_observations, n_strategies)``: one column per strategy/config
    tried, rows in time order (per-bar or per-period returns, or one performance value per
    CV split or CPCV path). Rows are cut into ``n_partitions`` (even) contiguous partitions
    (sizes differ by at most one when they do not divide). *Every* choice of half of them is
    an in-sample set and the other half out of sample -- ``C(S, S/2)`` combinations, all
    enumerated, so the result is exact (no sampling). For each, the in-sample best strategy
    (by ``metric``: ``"sharpe"`` = mean / std with ddof 1, or ``"mean"``) gets its relative
    out-of-sample rank ``omega`` (average rank among ties, divided by N + 1) and logit
    ``lambda``; PBO is the share with ``lambda <= 0``. Low PBO: the in-sample winner tends
    to stay above the median out of sample.
    """
    m = np.asarray(performance, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise FactoryError(f"PBO: performance must be 2-D (n_observations, n_strategies >= 2), "
                           f"got shape {m.shape}")
    if not np.isfinite(m).all():
        raise FactoryError("PBO: performance has NaN or infinite values; drop or fill them")
    if metric not in METRICS:
        raise FactoryError(f"PBO: metric must be one of {METRICS}, got {metric!r}")
    s = n_partitions
    if int(s) != s or s < 2 or s % 2 or s > m.shape[0]:
        raise FactoryError(f"PBO: n_partitions must be even, >= 2 and <= the {m.shape[0]} "
                           f"observations, got {s!r}")
    s = int(s)
    if comb(s, s // 2) > MAX_COMBINATIONS:
        raise FactoryError(f"PBO: n_partitions={s} gives {comb(s, s // 2)} combinations; "
                           "use at most 20 partitions")
    parts = np.array_split(np.arange(m.shape[0]), s)
    s1 = np.stack([m[p].sum(axis=0) for p in parts])  # (S, N)
    s2 = np.stack([(m[p] ** 2).sum(axis=0) for p in parts])
    cnt = np.array([len(p) for p in parts], dtype=np.float64)
    chosen = np.zeros((comb(s, s // 2), s))
    for c, combo in enumerate(combinations(range(s), s // 2)):
        chosen[c, list(combo)] = 1.0
    other = 1.0 - chosen
    perf_is = _performance(chosen @ s1, chosen @ s2, (chosen @ cnt)[:, None], metric)
    perf_oos = _performance(other @ s1, other @ s2, (other @ cnt)[:, None], metric)
    best = perf_is.argmax(axis=1)
    rows = np.arange(len(best))
    oos_best = perf_oos[rows, best]
    below = (perf_oos < oos_best[:, None]).sum(axis=1)
    ties = (perf_oos == oos_best[:, None]).sum(axis=1)
    rank = below + (ties + 1) / 2.0  # 1 = worst, N = best; ties share the average rank
    omega = rank / (m.shape[1] + 1)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(pbo=float(np.mean(logits <= 0)), logits=logits, relative_rank=omega,
                     selected=best, is_performance=perf_is[rows, best],
                     oos_performance=oos_best, n_combinations=len(best))


def _sharpe_std(sharpe: float, n_obs: int, skew: float, kurtosis: float) -> float:
    if n_obs < 2:
        raise FactoryError(f"PSR/DSR: n_obs must be >= 2, got {n_obs}")
    term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if term <= 0:
        raise FactoryError(
            f"PSR/DSR: 1 - skew*SR + (kurtosis-1)/4*SR^2 = {term:.4g} <= 0 for SR={sharpe}, "
            f"skew={skew}, kurtosis={kurtosis}; is the Sharpe per observation (not annualised) "
            "and the kurtosis Pearson's (normal = 3)?")
    return float(np.sqrt(term / (n_obs - 1)))


def probabilistic_sharpe_ratio(sharpe: float, n_obs: int, skew: float = 0.0,
                               kurtosis: float = 3.0, benchmark: float = 0.0) -> float:
    """P(true Sharpe > ``benchmark``) given an observed per-observation Sharpe (PSR).

    ``PSR = Phi((SR - SR*) * sqrt(n_obs - 1) / sqrt(1 - skew*SR + (kurtosis - 1)/4 * SR^2))``
    with SR, SR* per observation and Pearson kurtosis (see the module docstring).
    """
    return float(norm.cdf((sharpe - benchmark) / _sharpe_std(sharpe, n_obs, skew, kurtosis)))


def expected_max_sharpe(n_trials: int, variance_of_trial_sharpes: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios whose true value is 0 (DSR's SR*).

    ``sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))`` with the
    Euler-Mascheroni constant gamma; V in the same (per-observation) units as the Sharpes.
    One trial has nothing to deflate: 0.
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise FactoryError(f"DSR: n_trials must be an integer >= 1, got {n_trials!r}")
    if variance_of_trial_sharpes < 0:
        raise FactoryError(f"DSR: variance_of_trial_sharpes must be >= 0, got "
                           f"{variance_of_trial_sharpes}")
    if n_trials == 1:
        return 0.0
    z = (1 - EULER_GAMMA) * norm.ppf(1 - 1 / n_trials) \
        + EULER_GAMMA * norm.ppf(1 - 1 / (n_trials * np.e))
    return float(np.sqrt(variance_of_trial_sharpes) * z)


def deflated_sharpe_ratio(sharpe: float, n_trials: int, variance_of_trial_sharpes: float,
                          n_obs: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """PSR of the best of ``n_trials`` against the Sharpe expected from luck alone (DSR).

    ``sharpe`` is the selected (best) trial's per-observation Sharpe over ``n_obs``
    observations, ``variance_of_trial_sharpes`` the variance across all trials' Sharpes
    (same units), ``skew``/``kurtosis`` (Pearson) of the selected trial's returns.
    """
    sr0 = expected_max_sharpe(n_trials, variance_of_trial_sharpes)
    return probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis, benchmark=sr0)


def per_period_sharpe(annual_sharpe: float, periods_per_year: float) -> float:
    """Annualised Sharpe -> per-observation Sharpe: divide by ``sqrt(periods_per_year)``
    (252 for daily returns; 252 x 276 for 23-hour sessions of 5-minute bars)."""
    if periods_per_year <= 0:
        raise FactoryError(f"periods_per_year must be > 0, got {periods_per_year}")
    return float(annual_sharpe / np.sqrt(periods_per_year))


def per_period_sharpe_variance(annual_variance: float, periods_per_year: float) -> float:
    """Variance of annualised Sharpes -> per-observation units: divide by
    ``periods_per_year`` (the Sharpe scales by its square root)."""
    if periods_per_year <= 0:
        raise FactoryError(f"periods_per_year must be > 0, got {periods_per_year}")
    return float(annual_variance / periods_per_year)
