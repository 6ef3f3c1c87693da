"""The portfolio's hooks in the engine, on constructed bars: weight sizing, the correlation
filter, the net and gross caps and the drawdown kill switch act when they should, and not
otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import Instrument
from factory.simulation import CorrelationFilter, Simulator

TF = pd.Timedelta("5min")
INDEX = pd.date_range("2024-03-04 14:00", periods=30, freq=TF, tz="UTC", name="timestamp")
INSTRUMENTS = {s: Instrument(s, 0.01, 1.0, 0.0, 0.0) for s in ("AA", "BB")}  # no costs


def flat_bars(path: np.ndarray | None = None) -> pd.DataFrame:
    close = np.full(len(INDEX), 100.0) if path is None else path
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                         "volume": 1.0}, index=INDEX)


def signals(at: int, side: int, weight: float) -> pd.DataFrame:
    """Hold ``side`` from bar ``at`` on, at notional weight ``weight``."""
    sig = np.zeros(len(INDEX))
    sig[at:] = side
    return pd.DataFrame({"signal": sig, "weight": weight}, index=INDEX)


def run(decisions, bars=None, correlation=None, **risk):
    sim = Simulator(initial_capital=100_000.0, exit="signal", sizing="weight",
                    size={"max_position": 1_000_000}, risk=risk, session_minutes=1380.0)
    bars = bars or {s: flat_bars() for s in decisions}
    result, _ = sim.run(bars, decisions, {s: INSTRUMENTS[s] for s in bars}, TF,
                        correlation=correlation)
    return result


def entry(result, symbol):
    fills = result.fills[(result.fills["symbol"] == symbol) & (result.fills["reason"] == "entry")]
    return float(fills["qty"].iloc[0]) if len(fills) else 0.0


def test_weight_sizing_is_floor_of_weight_times_equity_over_notional():
    result = run({"AA": signals(2, 1, 0.3337), "BB": signals(2, -1, 0.05)})
    assert entry(result, "AA") == 333.0  # floor(0.3337 x 100,000 / (1 x 100))
    assert entry(result, "BB") == -50.0
    assert run({"AA": signals(2, 1, np.nan)}).fills.empty  # no weight: no trade


def corr_filter(rho: float, threshold: float, since: int = 0) -> CorrelationFilter:
    mats = np.array([[[1.0, rho], [rho, 1.0]]])
    return CorrelationFilter(pd.DatetimeIndex([INDEX[since] + TF]), mats, threshold)


@pytest.mark.parametrize(("rho", "side_b", "threshold", "blocked"), [
    (0.9, 1, 0.8, True),     # same direction, correlated above the threshold: blocked
    (0.9, 1, 0.95, False),   # below the threshold: traded
    (0.9, -1, 0.8, False),   # the opposite direction hedges: traded
    (-0.9, -1, 0.8, True),   # anti-correlated, opposite direction: the same bet, blocked
    (-0.9, 1, 0.8, False),   # anti-correlated, same direction: a hedge, traded
])
def test_correlation_filter(rho, side_b, threshold, blocked):
    result = run({"AA": signals(2, 1, 0.2), "BB": signals(5, side_b, 0.2)},
                 correlation=corr_filter(rho, threshold))
    assert entry(result, "AA") == 200.0  # the first position is never blocked
    assert entry(result, "BB") == (0.0 if blocked else side_b * 200.0)
    events = result.events[result.events["kind"] == "correlation"]
    assert (len(events) > 0) == blocked
    if blocked:
        assert set(events["symbol"]) == {"BB"} and events["value"].iloc[0] == pytest.approx(0.9)


def test_correlation_filter_waits_for_its_first_estimate_and_for_a_held_position():
    # the matrix takes effect after BB's signal: BB trades
    late = run({"AA": signals(2, 1, 0.2), "BB": signals(5, 1, 0.2)},
               correlation=corr_filter(0.9, 0.8, since=10))
    assert entry(late, "BB") == 200.0
    # BB signals before AA holds anything: BB trades, then AA is the one blocked
    first = run({"AA": signals(8, 1, 0.2), "BB": signals(5, 1, 0.2)},
                correlation=corr_filter(0.9, 0.8))
    assert entry(first, "BB") == 200.0 and entry(first, "AA") == 0.0


def test_net_cap_trims_only_what_adds_to_the_net():
    same = run({"AA": signals(2, 1, 0.5), "BB": signals(5, 1, 0.5)}, net_leverage=0.8)
    assert entry(same, "AA") == 500.0 and entry(same, "BB") == 300.0
    ev = same.events[same.events["kind"] == "net_cap"]
    assert len(ev) == 1 and ev["value"].iloc[0] == 500.0 and ev["limit"].iloc[0] == 300.0
    hedge = run({"AA": signals(2, 1, 0.5), "BB": signals(5, -1, 0.5)}, net_leverage=0.8)
    assert entry(hedge, "BB") == -500.0 and hedge.events.empty
    loose = run({"AA": signals(2, 1, 0.5), "BB": signals(5, 1, 0.5)}, net_leverage=1.0)
    assert entry(loose, "BB") == 500.0 and loose.events.empty


def test_gross_cap_trims_both_directions():
    for side in (1, -1):
        result = run({"AA": signals(2, 1, 0.5), "BB": signals(5, side, 0.5)},
                     gross_leverage=0.8)
        assert entry(result, "BB") == side * 300.0
        assert list(result.events["kind"]) == ["gross_cap"]
    assert run({"AA": signals(2, 1, 0.5), "BB": signals(5, 1, 0.5)},
               gross_leverage=1.0).events.empty


def test_drawdown_kill_switch():
    path = np.r_[np.full(10, 100.0), np.linspace(100.0, 60.0, 20)]  # AA falls 40%
    bars = {"AA": flat_bars(path)}
    killed = run({"AA": signals(2, 1, 1.0)}, bars=bars, max_drawdown=0.2)
    kill = killed.events[killed.events["kind"] == "kill_switch"]
    assert len(kill) == 1 and kill["value"].iloc[0] <= -0.2
    # flattened once, never re-entered although the signal stays long
    assert list(killed.fills["reason"]) == ["entry", "kill_switch"]
    assert killed.summary["killed"] is True
    alive = run({"AA": signals(2, 1, 1.0)}, bars=bars, max_drawdown=0.5)
    assert alive.events.empty and list(alive.fills["reason"]) == ["entry"]
