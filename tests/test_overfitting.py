"""PBO (CSCV), PSR and DSR: hand-computed values, the paper's example, and behaviour."""

from __future__ import annotations

from itertools import combinations
from math import erf, log, sqrt

import numpy as np
import pytest

from factory.errors import FactoryError
from factory.evaluation.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    per_period_sharpe,
    per_period_sharpe_variance,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)


def _phi(x: float) -> float:
    return 0.5 * (1 + erf(x / sqrt(2)))


def test_pbo_exact_on_a_hand_matrix():
    # 4 partitions (one row each), 3 strategies, metric = mean. Combinations in order:
    # IS {0,1}: a wins (8 vs 3, 4.5); OOS {2,3}: a 1, b 5, c 6 -> rank 1/3 -> -ln 3
    # IS {0,2}: c (5.5);  OOS {1,3}: a 4, b 4, c 5 -> rank 3 -> +ln 3
    # IS {0,3}: c (9.5);  OOS {1,2}: a 3, b 5, c 1 -> rank 1 -> -ln 3
    # IS {1,2}: b (5);    OOS {0,3}: a 6, b 3, c 9.5 -> rank 1 -> -ln 3
    # IS {1,3}: c (5);    OOS {0,2}: a 5, b 4, c 5.5 -> rank 3 -> +ln 3
    # IS {2,3}: c (6);    OOS {0,1}: a 8, b 3, c 4.5 -> rank 2 (omega 1/2) -> 0, overfit
    m = np.array([[5, 1, 4.5], [3, 2, 0], [0, 3, 1], [1, 2, 5]])
    res = probability_of_backtest_overfitting(m, n_partitions=4, metric="mean")
    assert res.n_combinations == 6
    assert res.selected.tolist() == [0, 2, 2, 1, 2, 2]
    ln3 = log(3)
    assert np.allclose(res.logits, [-ln3, ln3, -ln3, -ln3, ln3, 0.0])
    assert res.pbo == pytest.approx(4 / 6)
    assert np.allclose(res.relative_rank, [0.25, 0.75, 0.25, 0.25, 0.75, 0.5])
    assert res.oos_performance.tolist() == [0.5, 2.5, 0.5, 1.5, 2.75, 2.25]


def test_pbo_ties_share_the_average_rank():
    col = np.arange(8.0)
    res = probability_of_backtest_overfitting(np.c_[col, col], n_partitions=2, metric="mean")
    assert res.relative_rank.tolist() == [0.5, 0.5] and res.pbo == 1.0


def test_pbo_sharpe_matches_a_brute_force_loop():
    m = np.random.default_rng(3).normal(0.02, 1.0, size=(60, 5))
    res = probability_of_backtest_overfitting(m, n_partitions=6)
    parts = np.array_split(np.arange(60), 6)
    logits = []
    for combo in combinations(range(6), 3):
        is_rows = np.concatenate([parts[p] for p in combo])
        oos_rows = np.setdiff1d(np.arange(60), is_rows)
        sr_is = m[is_rows].mean(0) / m[is_rows].std(0, ddof=1)
        sr_oos = m[oos_rows].mean(0) / m[oos_rows].std(0, ddof=1)
        best = int(np.argmax(sr_is))
        omega = (1 + (sr_oos < sr_oos[best]).sum()) / 6
        logits.append(log(omega / (1 - omega)))
    assert np.allclose(res.logits, logits)
    assert res.pbo == pytest.approx(np.mean(np.array(logits) <= 0))


def test_pbo_low_when_one_strategy_is_truly_best():
    m = np.random.default_rng(0).normal(size=(2000, 10))
    m[:, 0] += 0.15  # per-observation Sharpe 0.15 vs 0 for the rest
    res = probability_of_backtest_overfitting(m, n_partitions=16)
    assert res.n_combinations == 12870
    assert res.pbo < 0.02
    assert (res.selected == 0).mean() > 0.98


def test_pbo_near_one_half_for_noise():
    values = [probability_of_backtest_overfitting(
        np.random.default_rng(seed).normal(size=(1000, 20)), n_partitions=16).pbo
        for seed in range(4)]
    assert 0.4 < np.mean(values) < 0.62
    assert all(0.3 < v < 0.7 for v in values)


def test_pbo_bad_input():
    with pytest.raises(FactoryError, match="n_strategies >= 2"):
        probability_of_backtest_overfitting(np.zeros((10, 1)))
    with pytest.raises(FactoryError, match="n_partitions must be even"):
        probability_of_backtest_overfitting(np.zeros((10, 3)), n_partitions=5)
    with pytest.raises(FactoryError, match="NaN"):
        probability_of_backtest_overfitting(np.full((16, 3), np.nan))


def test_dsr_reproduces_the_paper_example():
    # Bailey & Lopez de Prado (2014), numerical example: annualised SR 2.5 over 1250 daily
    # observations, best of N=100 trials whose annualised Sharpes have variance 1/2, returns
    # with skew -3 and kurtosis 10. Reported: SR*_0 = 0.1132 (per day), DSR = 0.9004.
    sr = per_period_sharpe(2.5, 250)
    var = per_period_sharpe_variance(0.5, 250)
    assert sr == pytest.approx(0.158114, abs=1e-6)
    assert expected_max_sharpe(100, var) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sr, 100, var, 1250, skew=-3, kurtosis=10) \
        == pytest.approx(0.9004, abs=5e-4)


def test_psr_is_the_normal_cdf_formula():
    sr, n, skew, kurt, bench = 0.1, 500, -0.7, 6.0, 0.03
    z = (sr - bench) * sqrt(n - 1) / sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(sr, n, skew, kurt, bench) == pytest.approx(_phi(z), 1e-12)
    # normal returns, zero benchmark: Phi(SR sqrt(n-1) / sqrt(1 + SR^2 / 2))
    assert probabilistic_sharpe_ratio(0.1, 101) == pytest.approx(_phi(1.0 / sqrt(1.005)), 1e-12)


def test_expected_max_sharpe_matches_simulation():
    draws = np.random.default_rng(1).normal(0, 0.2, size=(20000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(100, 0.04) == pytest.approx(draws, rel=0.02)
    assert expected_max_sharpe(1, 0.04) == 0.0


def test_dsr_monotone():
    base = {"sharpe": 0.1, "variance_of_trial_sharpes": 0.001, "n_obs": 1000}
    by_trials = [deflated_sharpe_ratio(n_trials=n, **base) for n in (1, 10, 100, 1000)]
    assert all(a > b for a, b in zip(by_trials, by_trials[1:], strict=False))
    assert by_trials[0] == pytest.approx(probabilistic_sharpe_ratio(0.1, 1000))
    longer = deflated_sharpe_ratio(0.1, 10, 0.001, 4000)
    assert longer > by_trials[1]
    assert deflated_sharpe_ratio(0.1, 10, 0.001, 1000, skew=-2) < by_trials[1]


def test_psr_rejects_impossible_moments():
    with pytest.raises(FactoryError, match="per observation"):
        probabilistic_sharpe_ratio(2.5, 100, skew=3.0, kurtosis=3.0)
    with pytest.raises(FactoryError, match="n_trials"):
        deflated_sharpe_ratio(0.1, 0, 0.01, 100)
