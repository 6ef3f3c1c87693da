"""Backtest on a hand-built path: trades, per-bar returns, annualisation, thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import BarSet, Instrument
from factory.evaluation.backtest import run_backtest, select_trades

CLOSE = np.array([100, 101, 102, 103, 104, 105, 106, 107], dtype=float)
BPY = 69552.0


def _bars() -> dict[str, pd.DataFrame]:
    idx = pd.date_range("2024-01-02", periods=len(CLOSE), freq="5min", tz="UTC")
    open_ = np.r_[100.0, CLOSE[:-1]]
    frame = pd.DataFrame({"open": open_, "high": CLOSE + 0.5, "low": open_ - 0.5,
                          "close": CLOSE, "volume": 1.0}, index=idx)
    return {"X": frame}


def _pred(p_long_0=0.8) -> pd.DataFrame:
    # t=0: long, exits at bar 3 at 103 (entry 100 at the open of bar 1)
    # t=1: long again, but the first trade is still open -> skipped
    # t=3: short, enters at the open of bar 4 (103), exits at bar 5 at 105
    # t=4: flat is most likely -> no trade
    return pd.DataFrame({
        "symbol": "X", "bar_idx": [0, 1, 3, 4], "exit_idx": [3, 4, 5, 6],
        "ret_long": [0.03, 0.02, 2 / 103, 0.0], "ret_short": [-0.03, -0.02, -2 / 103, 0.0],
        "cost": [0.001] * 4,
        "p_short": [0.1, 0.05, 0.7, 0.2], "p_flat": [0.1, 0.05, 0.2, 0.6],
        "p_long": [p_long_0, 0.9, 0.1, 0.2],
    })


def test_trades_and_bar_returns_by_hand():
    res = run_backtest(_pred(), _bars(), BPY, threshold=0.45)
    trades = res.trades
    assert trades["side"].tolist() == [1, -1]
    np.testing.assert_allclose(trades["entry"], [100, 103])
    np.testing.assert_allclose(trades["exit"], [103, 105])
    np.testing.assert_allclose(trades["net_return"], [0.029, -2 / 103 - 0.001])
    # marked to market from bar 1 (first possible entry) to bar 6 (last label end)
    expected = np.array([0.01 - 0.001, 0.01, 0.01, -1 / 103 - 0.001, -1 / 103, 0.0])
    r = res.equity.pct_change().fillna(res.equity.iloc[0] - 1).to_numpy()
    np.testing.assert_allclose(r, expected, atol=1e-12)
    m = res.metrics
    assert m["n_trades"] == 2 and m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(0.029 / (2 / 103 + 0.001))
    assert m["sharpe"] == pytest.approx(expected.mean() / expected.std(ddof=1) * np.sqrt(BPY))
    downside = np.sqrt(np.mean(np.minimum(expected, 0) ** 2))
    assert m["sortino"] == pytest.approx(expected.mean() / downside * np.sqrt(BPY))
    equity = np.cumprod(1 + expected)
    assert m["max_drawdown"] == pytest.approx((equity / np.maximum.accumulate(equity) - 1).min())
    assert m["total_return"] == pytest.approx(equity[-1] - 1)


def test_threshold_blocks_low_confidence_signals():
    res = run_backtest(_pred(p_long_0=0.44), _bars(), BPY, threshold=0.45)
    # t=0 is now below threshold, so t=1 (p_long 0.9) trades instead and exits at bar 4;
    # t=3 overlaps it and is skipped
    assert res.trades["side"].tolist() == [1]
    np.testing.assert_allclose(res.trades["entry"], [101])
    none = run_backtest(_pred(), _bars(), BPY, threshold=0.95)
    assert none.metrics["n_trades"] == 0 and none.metrics["sharpe"] == 0.0


def test_select_trades_skips_overlaps():
    t = np.array([0, 1, 2, 5, 6, 9])
    exit_idx = np.array([5, 3, 4, 6, 8, 10])
    side = np.array([1, -1, 1, 0, 1, -1])
    # 0 holds until bar 5; 5 is flat; 6 enters (t >= 5) and holds to 8; 9 enters
    assert select_trades(t, exit_idx, side).tolist() == [0, 4, 5]


def test_bars_per_year_from_calendar():
    bs = BarSet(bars={}, instruments={}, timeframe=pd.Timedelta("5min"))
    assert bs.bars_per_year == 252 * 276
    hourly = BarSet(bars={}, instruments={}, timeframe=pd.Timedelta("1h"), session_minutes=390)
    assert hourly.bars_per_year == pytest.approx(252 * 6.5)


def test_round_trip_cost_points():
    mes = Instrument("MES", tick_size=0.25, point_value=5, commission=0.62, slippage_ticks=1)
    assert mes.round_trip_cost_points == pytest.approx(2 * (0.25 + 0.124))


def test_oracle_on_real_labels_wins_every_trade(make_cfg):
    """Trading the true labels: a +-1 label means the trade clears its costs, so every
    backtest trade must be a net winner (ties the backtest to the labeler end to end)."""
    from factory.phase1 import load_or_build
    from factory.training.predictor import META_COLUMNS

    ds, _, _ = load_or_build(make_cfg())
    rows = ds.rows("test")
    pred = ds.meta.iloc[rows][META_COLUMNS].reset_index(drop=True)
    onehot = np.eye(3)[pred["label"].to_numpy() + 1]
    pred[["p_short", "p_flat", "p_long"]] = onehot
    res = run_backtest(pred, ds.bars, ds.bars_per_year, threshold=0.5)
    m = res.metrics
    assert m["n_trades"] > 50
    assert m["win_rate"] == 1.0 and m["profit_factor"] is None
    assert m["sharpe"] > 5 and m["max_drawdown"] > -0.05
    # every trade's bar returns add up to its net return (marked to market, costs at entry)
    assert m["total_return"] > 0 and (res.trades["net_return"] > 0).all()


def test_meta_labels_trade_the_primary_side():
    pred = _pred()
    pred["side"] = [-1, 1, -1, 1]
    pred[["p_short", "p_flat", "p_long"]] = [[0.0, 0.2, 0.8], [0, 1, 0], [0.0, 0.1, 0.9],
                                             [0, 1, 0]]  # take, skip, take, skip
    res = run_backtest(pred, _bars(), BPY, threshold=0.45)
    assert res.trades["side"].tolist() == [-1, -1]  # the primary model's sides, not "long"
    np.testing.assert_allclose(res.trades["net_return"], [-0.03 - 0.001, -2 / 103 - 0.001])
