"""Portfolio risk arithmetic on known covariances: contributions, ERC, inverse vol, shrinkage."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf

from factory.errors import FactoryError
from factory.portfolio.risk import (
    allocate,
    correlation,
    erc_weights,
    inverse_vol_weights,
    portfolio_vol,
    risk_contributions,
    shrunk_covariance,
)

# a known covariance: vols 10%, 20%, 30%, 15%; an equity-like block and a diversifier
VOLS = np.array([0.10, 0.20, 0.30, 0.15])
CORR = np.array([[1.0, 0.8, 0.6, -0.2],
                 [0.8, 1.0, 0.7, 0.0],
                 [0.6, 0.7, 1.0, 0.1],
                 [-0.2, 0.0, 0.1, 1.0]])
COV = CORR * np.outer(VOLS, VOLS)


def test_risk_contributions_sum_to_the_portfolio_volatility():
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = rng.normal(size=4)  # long and short
        rc = risk_contributions(w, COV)
        assert rc.sum() == pytest.approx(portfolio_vol(w, COV), rel=1e-12)
        assert portfolio_vol(w, COV) == pytest.approx(np.sqrt(w @ COV @ w), rel=1e-12)
    assert risk_contributions(np.zeros(4), COV).tolist() == [0.0] * 4
    # by hand, two uncorrelated assets: RC_i = w_i^2 s_i^2 / vol
    w, cov = np.array([1.0, 2.0]), np.diag([0.04, 0.01])
    vol = np.sqrt(0.04 + 4 * 0.01)
    np.testing.assert_allclose(risk_contributions(w, cov), [0.04 / vol, 0.04 / vol])


def test_erc_gives_equal_contributions_on_a_known_covariance():
    w = erc_weights(COV)
    rc = risk_contributions(w, COV)
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    np.testing.assert_allclose(rc, rc.mean(), atol=1e-6)  # the check
    assert np.ptp(rc) < 1e-12  # in fact to machine precision
    # the less volatile, less correlated instrument gets the largest weight
    assert w.argmax() == 0 and w.argmin() == 2


def test_erc_closed_forms():
    # two assets, any correlation: ERC = inverse volatility
    for rho in (-0.5, 0.0, 0.9):
        cov = np.array([[0.04, rho * 0.2 * 0.1], [rho * 0.2 * 0.1, 0.01]])
        np.testing.assert_allclose(erc_weights(cov), [1 / 3, 2 / 3], atol=1e-12)
    # n assets with one common correlation: ERC = inverse volatility too
    vols = np.array([0.1, 0.2, 0.4])
    cov = (0.3 + 0.7 * np.eye(3)) * np.outer(vols, vols)
    np.testing.assert_allclose(erc_weights(cov), inverse_vol_weights(cov), atol=1e-12)
    np.testing.assert_allclose(inverse_vol_weights(cov), [4 / 7, 2 / 7, 1 / 7])


def test_allocations_and_refusals():
    np.testing.assert_allclose(allocate("equal", COV), [0.25] * 4)
    np.testing.assert_allclose(allocate("inverse_vol", COV), (1 / VOLS) / (1 / VOLS).sum())
    with pytest.raises(FactoryError, match="portfolio.sizing"):
        allocate("kelly", COV)
    with pytest.raises(FactoryError, match="positive, finite variances"):
        erc_weights(np.diag([0.01, 0.0]))


def test_shrinkage_is_scikit_learns_and_correlation_is_unit_diagonal():
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal(np.zeros(4), COV, size=80)
    np.testing.assert_allclose(shrunk_covariance(x, "ledoit_wolf"), ledoit_wolf(x)[0])
    sample = shrunk_covariance(x, "none")
    np.testing.assert_allclose(sample, np.cov(x, rowvar=False, ddof=0))
    # shrinkage pulls the correlations toward zero
    assert np.abs(correlation(shrunk_covariance(x))).sum() < np.abs(correlation(sample)).sum()
    np.testing.assert_allclose(np.diag(correlation(COV)), 1.0)
    np.testing.assert_allclose(correlation(COV), CORR)
    with pytest.raises(FactoryError, match="shrinkage"):
        shrunk_covariance(x, "glasso")
