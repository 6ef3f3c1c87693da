"""The simulator on hand-built bars: timing, fills, costs, sizing, limits, segments, config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.simulation import Simulator, bet_size

TF = pd.Timedelta("5min")
MES = Instrument("MES", tick_size=0.25, point_value=5.0, commission=0.62, slippage_ticks=1)
MGC = Instrument("MGC", tick_size=0.1, point_value=10.0, commission=0.62, slippage_ticks=1)
INST = {"MES": MES, "MGC": MGC}


def _frame(open_, close, index, spread=0.5) -> pd.DataFrame:
    open_, close = np.asarray(open_, float), np.asarray(close, float)
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close,
                         "volume": 1.0}, index=index)


def _walk(n, seed=0, start="2024-01-08 00:00", price=4800.0, sessions=1):
    """A random walk on the tick grid; ``sessions`` sessions separated by a 60-min break."""
    rng = np.random.default_rng(seed)
    per = n // sessions
    stamps = []
    for k in range(sessions):
        t0 = pd.Timestamp(start, tz="UTC") + k * (per * TF + pd.Timedelta("60min"))
        stamps.append(pd.date_range(t0, periods=per, freq=TF))
    index = stamps[0].append(stamps[1:]) if sessions > 1 else stamps[0]
    close = price + np.cumsum(rng.choice([-0.5, -0.25, 0, 0.25, 0.5], len(index)))
    open_ = np.r_[price, close[:-1]]
    return _frame(open_, close, index, spread=0.25)


def _signals(index, at: dict[int, int], width=1e9) -> pd.DataFrame:
    rows = sorted(at)
    return pd.DataFrame({"signal": [at[i] for i in rows], "width_up": width, "width_dn": width},
                        index=index[rows])


def _run(bars, decisions, **kw):
    kw = {"risk": None, "horizon": 3, **kw}
    return Simulator(**kw).run(bars, decisions, INST, TF)


def test_latency_fills_at_the_next_open_after_the_delay():
    b = _frame([100, 101, 102, 103, 104, 105, 106, 107], [101, 102, 103, 104, 105, 106, 107, 108],
               pd.date_range("2024-01-08 10:00", periods=8, freq=TF, tz="UTC"))
    dec = {"MES": _signals(b.index, {1: 1})}
    for latency, unit, ref, when in [
        (0, "bars", 102.0, b.index[2]),            # decision at bar 1's close: bar 2's open
        (1, "bars", 103.0, b.index[3]),            # one bar later
        (150, "seconds", 102.5, b.index[2] + pd.Timedelta("150s")),  # half-way into bar 2
    ]:
        res, _ = _run({"MES": b}, dec, latency=latency, latency_unit=unit)
        fill = res.fills.iloc[0]
        assert fill["ref_price"] == ref and fill["time"] == when
        assert fill["price"] == ref + 0.25  # one tick against the buyer
        assert res.orders.iloc[0]["status"] == "filled"


def test_orders_wait_for_the_next_session_open():
    """A decision before the daily break fills at the next session's open, never before."""
    first = pd.date_range("2024-01-08 21:45", periods=3, freq=TF, tz="UTC")  # to 21:55
    second = pd.date_range("2024-01-08 23:00", periods=3, freq=TF, tz="UTC")
    b = _frame([100, 100, 100, 107, 108, 109], [100, 100, 100, 108, 109, 110],
               first.append(second))
    for latency in (0, 2, 5):  # arrivals 22:00, 22:10, 22:25: all inside the break
        res, _ = _run({"MES": b}, {"MES": _signals(b.index, {2: 1})}, latency=latency)
        fill = res.fills.iloc[0]
        assert fill["time"] == second[0] and fill["ref_price"] == 107.0


def test_costs_and_pnl_in_currency():
    b = _frame([100, 100, 102, 104, 104], [100, 102, 104, 104, 104],
               pd.date_range("2024-01-08 10:00", periods=5, freq=TF, tz="UTC"))
    res, state = _run({"MES": b}, {"MES": _signals(b.index, {0: 1})}, horizon=2)
    tr = res.trades.iloc[0]
    assert (tr["entry_fill"], tr["exit_ref"], tr["exit_fill"]) == (100.25, 104.0, 103.75)
    assert tr["exit_reason"] == "vertical" and tr["bars_held"] == 2
    assert tr["net_pnl"] == pytest.approx((103.75 - 100.25) * 5 - 2 * 0.62)
    assert tr["commission"] == pytest.approx(1.24) and tr["slippage"] == pytest.approx(2.5)
    assert state.equity == pytest.approx(100_000 + tr["net_pnl"])
    # per-bar P&L: entry bar from the fill to the close, less the entry commission
    pnl = res.positions["pnl"].to_numpy()
    np.testing.assert_allclose(pnl, [0, (102 - 100.25) * 5 - 0.62, (103.75 - 102) * 5 - 0.62,
                                     0, 0])
    assert res.positions["position"].tolist() == [0, 1, 0, 0, 0]


def test_barriers_from_the_entry_fill_and_gap_fills():
    idx = pd.date_range("2024-01-08 10:00", periods=5, freq=TF, tz="UTC")
    b = _frame([100, 100, 100.5, 98, 98], [100, 100.5, 100.75, 98, 98], idx, spread=0.25)
    dec = {"MES": _signals(idx, {0: 1}, width=2.0)}  # barriers 102 / 98 around the open 100
    res, _ = _run({"MES": b}, dec, horizon=10)
    tr = res.trades.iloc[0]
    assert tr["exit_reason"] == "lower" and tr["exit_ref"] == 98.0  # bar 3 gaps to 98
    b2 = b.copy()
    b2.loc[idx[3], ["open", "low"]] = [97.0, 96.75]  # gaps through: fills at the open
    tr = _run({"MES": b2}, dec, horizon=10)[0].trades.iloc[0]
    assert tr["exit_ref"] == 97.0


def test_volatility_slippage_and_vol_target_sizing_by_hand():
    b = _walk(400, seed=3)
    span = 50
    dec = {"MES": _signals(b.index, {300: 1})}
    res, _ = _run({"MES": b}, dec, sizing="vol_target",
                  size={"vol_span": span, "vol_target": 0.02, "max_position": 1000},
                  slippage={"model": "volatility", "vol_mult": 2.0, "min_ticks": 1})
    r2 = np.log(b["close"]).diff().iloc[1:] ** 2
    var = r2.ewm(alpha=2 / (span + 1), adjust=False).mean()
    c300 = b["close"].iloc[300]
    sigma_day = np.sqrt(var.loc[b.index[300]] * 276)
    qty = np.floor(0.02 * 100_000 / (5.0 * c300 * sigma_day))
    assert qty > 1 and res.orders.iloc[0]["target"] == qty
    sigma_pts = np.sqrt(var.loc[b.index[300]]) * c300  # known before bar 301 fills
    slip = max(1.0, np.round(2.0 * sigma_pts / 0.25)) * 0.25
    assert res.fills.iloc[0]["slippage_points"] == pytest.approx(slip)


def test_sizes_use_only_the_past():
    """Changing every price after bar T leaves every order sent up to T unchanged."""
    b = _walk(600, seed=5, sessions=2)
    sig = np.random.default_rng(1).choice([-1, 0, 1], len(b))
    dec = {"MES": pd.DataFrame({"signal": sig, "p": 0.6, "width_up": 1.0, "width_dn": 1.0},
                               index=b.index)}
    T = 400
    b2 = b.copy()
    b2.iloc[T + 1:, :4] = b2.iloc[T + 1:, :4] * 1.07 + 3.0
    for sizing in ("vol_target", "probability", "fixed"):
        kw = {"sizing": sizing, "size": {"vol_span": 30, "max_position": 50, "vol_target": 0.05},
              "latency": 1, "risk": {"gross_leverage": 30.0, "max_drawdown": 0.5}}
        o1 = _run({"MES": b}, dec, **kw)[0].orders
        o2 = _run({"MES": b2}, dec, **kw)[0].orders
        cut = b.index[T] + TF
        a1, a2 = o1[o1["created_time"] <= cut], o2[o2["created_time"] <= cut]
        assert len(a1) > 20 and len(a1) == len(a2), sizing
        np.testing.assert_array_equal(a1["target"].to_numpy(), a2["target"].to_numpy())


def test_probability_bet_size_ldp():
    p = np.array([0.5, 0.7, 1 / 3, 1.0])
    z = (p[:3] - 1 / 3) / np.sqrt(p[:3] * (1 - p[:3]))
    from scipy.stats import norm
    np.testing.assert_allclose(bet_size(p)[:3], 2 * norm.cdf(z) - 1)
    assert bet_size(p)[3] == 1.0
    np.testing.assert_allclose(bet_size(p, step=0.1), [0.3, 0.6, 0.0, 1.0])
    b = _walk(50)
    dec = {"MES": pd.DataFrame({"p_short": [0.2], "p_flat": [0.1], "p_long": [0.7],
                                "width_up": 5.0, "width_dn": 5.0}, index=b.index[[10]])}
    res, _ = _run({"MES": b}, dec, sizing="probability", size={"max_position": 5, "step": 0.1})
    assert res.orders.iloc[0]["target"] == 3  # m = 0.576 -> 0.6 x 5 contracts


def test_kill_switch_flattens_and_stops():
    idx = pd.date_range("2024-01-08 10:00", periods=12, freq=TF, tz="UTC")
    close = np.array([100, 100, 99, 97, 95, 93, 92, 92, 92, 92, 92, 92], float)
    b = _frame(np.r_[100, close[:-1]], close, idx)
    dec = {"MES": _signals(idx, {i: 1 for i in range(12)})}
    res, state = _run({"MES": b}, dec, exit="signal",
                      size={"contracts": 10}, risk={"max_drawdown": 0.002})
    ev = res.events[res.events["kind"] == "kill_switch"]
    assert len(ev) == 1 and ev.iloc[0]["value"] <= -0.002 and ev.iloc[0]["limit"] == -0.002
    assert state.killed and state.positions() == {"MES": 0.0}
    kill_time = ev.iloc[0]["time"]
    assert (res.orders["created_time"] <= kill_time).all()  # nothing sent after the kill
    assert res.trades.iloc[-1]["exit_reason"] == "kill_switch"


def test_daily_loss_blocks_the_rest_of_the_session_only():
    b = _walk(200, seed=2, sessions=2)
    close = b["close"].to_numpy().copy()
    close[20:40] -= np.linspace(0, 30, 20)  # a slump in session 1
    b = _frame(np.r_[close[0], close[:-1]], close, b.index)
    dec = {"MES": _signals(b.index, {i: 1 for i in range(len(b))})}
    res, _ = _run({"MES": b}, dec, exit="signal", size={"contracts": 5},
                  risk={"daily_loss": 0.002})
    kinds = res.events["kind"].tolist()
    assert kinds[:2] == ["daily_loss", "resume"]
    stop, resume = res.events["time"].iloc[0], res.events["time"].iloc[1]
    assert resume == b.index[100]  # the next session's first bar
    sent = res.orders["created_time"]
    assert not ((sent > stop) & (sent < resume)).any()  # nothing between stop and resume
    assert (sent > resume).any()  # trading resumed


def test_gross_cap_reduces_orders_and_is_logged():
    ia = _walk(60, seed=1)
    ib = _walk(60, seed=2, price=2000.0)
    dec = {s: _signals(ia.index, {10: 1}) for s in ("MES", "MGC")}
    # notional: MES ~ 4800 x 5 = 24k, MGC ~ 2000 x 10 = 20k per contract; cap 1.0 x 100k
    res, _ = _run({"MES": ia, "MGC": ib}, dec, size={"contracts": 3},
                  risk={"gross_leverage": 1.0})
    targets = res.orders.set_index("symbol")["target"]
    assert targets["MES"] == 3 and targets["MGC"] == np.floor((100_000 - 3 * 5 * ia["close"]
                                                                .iloc[10]) / (10 * ib["close"]
                                                                              .iloc[10]))
    ev = res.events[res.events["kind"] == "gross_cap"].iloc[0]
    assert ev["symbol"] == "MGC" and ev["value"] == 3 and ev["limit"] == targets["MGC"]


def test_flat_at_session_end():
    b = _walk(40, seed=4, sessions=2)
    dec = {"MES": _signals(b.index, {15: 1})}
    res, _ = _run({"MES": b}, dec, horizon=100, risk={"flat_at_session_end": True})
    tr = res.trades.iloc[0]
    assert tr["exit_reason"] == "session_end" and tr["exit_time"] == b.index[19]
    assert tr["exit_ref"] == b["close"].iloc[19]
    assert res.events.iloc[0]["kind"] == "session_flat"


def test_hold_until_the_signal_changes():
    b = _walk(30, seed=6)
    dec = {"MES": _signals(b.index, {2: 1, 3: 1, 4: 1, 8: -1, 9: -1, 12: 0, 14: 1})}
    res, _ = _run({"MES": b}, dec, exit="signal")
    tr = res.trades
    assert tr["side"].tolist() == [1, -1]
    assert tr["entry_time"].tolist() == [b.index[3], b.index[9]]
    assert tr["exit_time"].tolist() == [b.index[9], b.index[13]]  # reverse, then flat
    assert tr["exit_reason"].tolist() == ["signal", "signal"]
    assert res.summary["open_positions"] == {"MES": 1.0}  # the last long is still open


def test_segments_equal_one_run():
    """Walk-forward drives the engine segment by segment: the carried state makes the
    pieces one run, including orders in flight across a cut and open trades."""
    bars = {"MES": _walk(900, seed=8, sessions=3), "MGC": _walk(900, seed=9, sessions=3,
                                                                 price=2000.0)}
    rng = np.random.default_rng(3)
    dec = {s: pd.DataFrame({"signal": rng.choice([-1, 0, 1], 900), "width_up": 2.0,
                            "width_dn": 1.5}, index=f.index) for s, f in bars.items()}
    sim = Simulator(horizon=7, latency=1.5, sizing="vol_target", size={"vol_span": 20},
                    risk={"gross_leverage": 3.0, "daily_loss": 0.001})
    whole, _ = sim.run(bars, dec, INST, TF)
    cuts = [0, 137, 300, 611, 900]  # mid-session and at session boundaries
    state, parts = sim.start(list(bars)), []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        seg = {s: f.iloc[a:b] for s, f in bars.items()}
        res, state = sim.run(seg, {s: d.iloc[a:b] for s, d in dec.items()}, INST, TF, state)
        parts.append(res)
    from factory.simulation import SimResult
    joined = SimResult.concat(parts, sim.initial_capital)
    assert len(whole.trades) > 10 and len(whole.events) > 0
    for name in ("trades", "fills", "events"):
        pd.testing.assert_frame_equal(getattr(joined, name), getattr(whole, name), obj=name)
    pd.testing.assert_frame_equal(joined.equity, whole.equity)
    pd.testing.assert_frame_equal(joined.orders.sort_values("order_id").reset_index(drop=True),
                                  whole.orders)


def test_config_composes_and_bad_values_fail_clearly(make_cfg):
    from factory.config import build

    cfg = make_cfg("+sim=default")
    sim = build(cfg.sim)
    assert isinstance(sim, Simulator) and sim.horizon == cfg.horizon
    assert sim.threshold == cfg.evaluation.threshold
    from factory.reports import Tearsheet

    assert isinstance(sim.tearsheet, Tearsheet) and sim.tearsheet.gap == sim.session_gap_minutes
    with pytest.raises(FactoryError, match="sim.sizing"):
        Simulator(sizing="kelly")
    with pytest.raises(FactoryError, match="sim.latency"):
        Simulator(latency=-1)
    with pytest.raises(FactoryError, match="risk.max_drawdown"):
        Simulator(risk={"max_drawdown": -0.1})
    with pytest.raises(FactoryError, match="unknown keys"):
        Simulator(size={"contract": 2})
    b = _walk(20)
    with pytest.raises(FactoryError, match="needs the label geometry"):
        _run({"MES": b}, {"MES": pd.DataFrame({"signal": [1]}, index=b.index[[3]])})
    with pytest.raises(FactoryError, match="is not a bar of MES"):
        _run({"MES": b}, {"MES": _signals(b.index + pd.Timedelta("1min"), {3: 1})})
