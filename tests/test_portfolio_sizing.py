"""Portfolio sizing on constructed bars: the return grid, the volatility target, the weight cap,
and the leakage proofs: changing every price after a bar leaves every weight, covariance and
correlation in force up to that bar, every order sent up to it, and the parameters Optuna
chooses on validation identical."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.portfolio.book import BookSpec, run_book, simulator
from factory.portfolio.optimize import optimise
from factory.portfolio.sizing import PortfolioSizer
from factory.portfolio.sources import Side, Universe
from tests.conftest import CONF

TF = pd.Timedelta("5min")
SYMBOLS = ["AA", "BB", "CC"]
VOLS = np.array([0.0010, 0.0015, 0.0020])  # per 5-minute bar
CORR = np.array([[1.0, 0.7, 0.1], [0.7, 1.0, 0.2], [0.1, 0.2, 1.0]])


def make_bars(days: int = 30, seed: int = 0, symbols=SYMBOLS, vols=VOLS, corr=CORR,
              bars_per_session: int = 276) -> dict[str, pd.DataFrame]:
    """CME-like sessions (23:00 UTC Sunday-Thursday, 23 hours) of correlated random walks."""
    rng = np.random.default_rng(seed)
    starts = [d for d in pd.date_range("2024-01-07 23:00", periods=days, freq="D", tz="UTC")
              if d.day_of_week in (6, 0, 1, 2, 3)]
    index = pd.DatetimeIndex(np.concatenate([
        s.value + TF.value * np.arange(bars_per_session) for s in starts]).view("M8[ns]")
        ).tz_localize("UTC")
    cov = corr * np.outer(vols, vols)
    r = rng.multivariate_normal(np.zeros(len(symbols)), cov, size=len(index))
    out = {}
    for j, sym in enumerate(symbols):
        close = 100.0 * np.exp(np.cumsum(r[:, j]))
        open_ = np.r_[100.0, close[:-1]]
        wick = np.abs(rng.normal(0, vols[j] / 2, len(index)))
        out[sym] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick),
                                 "low": np.minimum(open_, close) * (1 - wick), "close": close,
                                 "volume": 100.0}, index=pd.DatetimeIndex(index,
                                                                         name="timestamp"))
    return out


def make_decisions(bars: dict[str, pd.DataFrame], seed: int = 1) -> dict[str, pd.DataFrame]:
    """Random class probabilities (a trade about one bar in five) with 0.3% barriers."""
    rng = np.random.default_rng(seed)
    out = {}
    for sym, frame in bars.items():
        p = rng.dirichlet([1.0, 3.0, 1.0], size=len(frame))
        out[sym] = pd.DataFrame({"p_short": p[:, 0], "p_flat": p[:, 1], "p_long": p[:, 2],
                                 "barrier_up": 0.003, "barrier_dn": 0.003}, index=frame.index)
    return out


def make_universe(bars, decisions, val, test) -> Universe:
    instruments = {s: Instrument(s, 0.01, 50.0, 1.0, 1.0) for s in bars}
    return Universe(bars, instruments, TF, 252.0, 1380.0, 12, Side([], decisions), None, val,
                    test)


def poison(bars: dict[str, pd.DataFrame], after: pd.Timestamp, seed: int = 5):
    """Every bar stamped after ``after`` multiplied by a random factor per symbol and bar."""
    rng = np.random.default_rng(seed)
    out = {}
    for sym, frame in bars.items():
        f = frame.copy()
        later = f.index > after
        factor = np.exp(rng.normal(0, 0.05, later.sum()))
        for col in ("open", "high", "low", "close"):
            f.loc[later, col] = f.loc[later, col].to_numpy() * factor
        out[sym] = f
    return out


def test_grid_returns_never_span_a_closed_session():
    bars = make_bars(days=3)
    sizer = PortfolioSizer(covariance={"bar": "1h"})
    ret = sizer.grid_returns(bars, TF)
    # the session opening Sunday 23:00: its first hour closes 00:00 Monday; the hour before had
    # no bar, so no return there (no price carried over the weekend); the next hour has one
    first = ret.index[0]
    assert first == pd.Timestamp("2024-01-08 00:00", tz="UTC")
    assert ret.loc[first].isna().all() and ret.iloc[1].notna().all()
    # the hour's return is the log change of the last closes of two consecutive hours
    close = bars["AA"]["close"]
    c1 = close[close.index + TF <= pd.Timestamp("2024-01-08 01:00", tz="UTC")].iloc[-1]
    c0 = close[close.index + TF <= pd.Timestamp("2024-01-08 00:00", tz="UTC")].iloc[-1]
    assert ret.loc[pd.Timestamp("2024-01-08 01:00", tz="UTC"), "AA"] == pytest.approx(
        np.log(c1 / c0), rel=1e-12)
    # the daily break 22:00-23:00: the 23:00 grid point (nothing closed in 22:00-23:00) is absent
    # and the 00:00 return, whose previous hour is empty, is NaN
    assert pd.Timestamp("2024-01-08 23:00", tz="UTC") not in ret.index
    assert ret.loc[pd.Timestamp("2024-01-09 00:00", tz="UTC")].isna().all()


def test_vol_target_cap_and_allocations():
    bars = make_bars(days=20)
    for sizing in ("equal", "inverse_vol", "erc"):
        sizer = PortfolioSizer(sizing, target_vol=0.15, covariance={"window": 200})
        est = sizer.estimate(bars, TF)
        assert len(est.since) > 5
        for k in range(len(est.since)):
            w, cov = est.weights[k], est.cov[k]
            assert np.sqrt(w @ cov @ w * est.periods_per_year) == pytest.approx(0.15, rel=1e-9)
    est = PortfolioSizer("erc", target_vol=0.15, covariance={"window": 200}).estimate(bars, TF)
    rc = est.weights[-1] * (est.cov[-1] @ est.weights[-1])
    np.testing.assert_allclose(rc, rc.mean(), rtol=1e-9)  # ERC after the scaling too
    cap = float(np.median(est.weights))
    capped = PortfolioSizer("erc", 0.15, max_weight=cap, covariance={"window": 200}).estimate(
        bars, TF)
    np.testing.assert_allclose(capped.weights, np.minimum(est.weights, cap))
    assert (est.weights > cap).any() and (est.weights < cap).any()  # it acted, and only there
    no_cap = PortfolioSizer("erc", 0.15, max_weight=10.0, covariance={"window": 200})
    np.testing.assert_array_equal(no_cap.estimate(bars, TF).weights, est.weights)
    lev = PortfolioSizer("equal", None, leverage=2.0, covariance={"window": 200})
    np.testing.assert_allclose(lev.estimate(bars, TF).weights, 2.0 / 3.0)


def test_estimates_need_min_periods_and_refuse_bad_keys():
    bars = make_bars(days=4)
    est = PortfolioSizer(covariance={"window": 400, "min_periods": 300}).estimate(bars, TF)
    assert len(est.since) == 0  # four sessions hold fewer than 300 complete hours
    assert np.isnan(est.weight_at("AA", bars["AA"].index)).all()
    with pytest.raises(FactoryError, match="portfolio.covariance.window"):
        PortfolioSizer(covariance={"window": 1})
    with pytest.raises(FactoryError, match="portfolio.covariance.rebalance"):
        PortfolioSizer(covariance={"rebalance": "often"})
    with pytest.raises(FactoryError, match="unknown keys"):
        PortfolioSizer(covariance={"span": 3})
    with pytest.raises(FactoryError, match="portfolio.target_vol"):
        PortfolioSizer(target_vol=-0.1)


def test_weights_never_see_later_prices():
    bars = make_bars(days=30)
    cut = bars["AA"].index[len(bars["AA"]) // 2 + 37]  # mid-session
    later = poison(bars, cut)
    sizer = PortfolioSizer("erc", 0.1, max_weight=0.8, covariance={"window": 120,
                                                                  "rebalance": "4h"})
    a, b = sizer.estimate(bars, TF), sizer.estimate(later, TF)
    known = a.since <= cut + TF  # estimates in force by the cut bar's close
    assert known.sum() > 10 and (~known).sum() > 10
    n = int(known.sum())
    assert a.since[:n].equals(b.since[:n])
    for name in ("cov", "corr", "weights"):
        np.testing.assert_array_equal(getattr(a, name)[:n], getattr(b, name)[:n])
    assert not np.array_equal(a.weights[n:], b.weights[n:])  # the poison did reach later ones
    stamps = bars["BB"].index[bars["BB"].index <= cut]
    np.testing.assert_array_equal(a.weight_at("BB", stamps + TF), b.weight_at("BB", stamps + TF))


def _engine(spec: BookSpec, capital: float = 1e7):
    from omegaconf import OmegaConf

    sim = OmegaConf.load(CONF / "sim" / "default.yaml")
    sim.horizon, sim.threshold, sim.session_minutes = 12, 0.45, 1380.0
    sim.tearsheet = None
    return simulator(sim, spec, capital, 12, 1000)


def test_orders_up_to_a_bar_ignore_every_later_price():
    bars = make_bars(days=30)
    decisions = make_decisions(bars)
    cut = bars["AA"].index[len(bars["AA"]) * 3 // 4]
    period = (bars["AA"].index[len(bars["AA"]) // 2], bars["AA"].index[-1] + TF)
    spec = BookSpec.from_config({"sizing": "erc", "target_vol": 0.2, "correlation_filter": 0.5,
                                 "covariance": {"window": 120},
                                 "limits": {"gross": 3.0, "net": 1.5, "max_weight": 1.0}})
    runs = [run_book(make_universe(b, decisions, period, period), decisions, spec, _engine(spec),
                     period) for b in (bars, poison(bars, cut))]
    orders = [r.result.orders for r in runs]
    early = [o[o["created_time"] <= cut + TF].reset_index(drop=True) for o in orders]
    assert len(early[0]) > 50
    pd.testing.assert_frame_equal(early[0], early[1])
    events = [r.result.events for r in runs]
    assert (events[0]["kind"] == "correlation").any()  # the filter really acted here
    pd.testing.assert_frame_equal(*[e[e["time"] <= cut + TF].reset_index(drop=True)
                                    for e in events])


def test_optuna_chooses_on_validation_only():
    bars = make_bars(days=40)
    decisions = make_decisions(bars)
    idx = bars["AA"].index
    val = (idx[len(idx) // 3], idx[2 * len(idx) // 3])
    test = (idx[2 * len(idx) // 3], idx[-1] + TF)
    spec = BookSpec.from_config({"sizing": "erc", "target_vol": 0.1, "correlation_filter": 0.6,
                                 "covariance": {"window": 120}, "limits": {"gross": 4.0}})
    search = {"target_vol": "interval(0.05, 0.3)", "correlation_filter": "interval(0.3, 0.9)"}

    def choose(b):
        uni = make_universe(b, decisions, val, test)

        def objective(s):
            from factory.reports.metrics import daily_returns

            r = run_book(uni, decisions, s, _engine(s), val).result
            d = daily_returns(r.equity["equity"], 1e7, 60.0, TF)
            return float(d.mean() / d.std(ddof=1))
        return optimise(spec, search, 6, 3, objective)

    best_a, trials_a = choose(bars)
    best_b, trials_b = choose(poison(bars, val[1]))  # every test-period price changed
    assert best_a == best_b
    pd.testing.assert_frame_equal(trials_a, trials_b)
    assert trials_a["objective"].nunique() > 3  # the trials really differ
    first = trials_a.iloc[0]  # the configured book is the first trial
    assert (first["target_vol"], first["correlation_filter"]) == (0.1, 0.6)
    assert trials_a["objective"].max() >= first["objective"]
