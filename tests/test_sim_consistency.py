"""The consistency proof: the simulator reproduces the research backtest on the same predictions.

Zero latency, fixed size 1, the instruments' slippage ticks, no risk limits, barrier exits:
the engine's trades are the backtest's trades (same bars, sides, entry prices, bit-identical
net returns) and its per-bar P&L, in the backtest's units (a return on one contract's entry
notional, the whole round trip paid on the entry bar), is the backtest's return series. Run
on a real Phase-1 dataset (two symbols, the synthetic source) with synthetic probabilities
that trade often, plus the meta-label form on hand-made rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.config import build
from factory.evaluation.backtest import portfolio_metrics, run_backtest
from factory.phase1 import load_or_build
from factory.simulation import Simulator, from_predictions

THRESHOLD = 0.45


@pytest.fixture(scope="module")
def phase1(tmp_path_factory):
    from tests.conftest import compose_config

    cfg = compose_config(tmp_path_factory.mktemp("p1"), "horizon=10")
    ds, _, _ = load_or_build(cfg)
    return cfg, ds


def _predictions(ds, split: str, seed: int = 0) -> pd.DataFrame:
    rows = ds.rows(split)
    meta = ds.meta.iloc[rows].reset_index(drop=True)
    p = np.random.default_rng(seed).dirichlet([1.0, 1.0, 1.0], len(meta))
    return meta.assign(p_short=p[:, 0], p_flat=p[:, 1], p_long=p[:, 2])


def _widths(cfg, ds, pred) -> pd.DataFrame:
    """The label's barrier widths in points, computed the labeler's way (unit x multiplier)."""
    labeler = build(cfg.labeling)
    out = []
    for sym, sub in pred.groupby("symbol", sort=True):
        unit = labeler.unit(ds.bars[sym], ds.horizon)
        um, lm = labeler.multipliers(sym)
        i = sub["bar_idx"].to_numpy()
        out.append(sub.assign(width_up=(um * unit)[i], width_dn=(lm * unit)[i]))
    return pd.concat(out)


def _simulate(ds, pred, horizon):
    sim = Simulator(horizon=horizon, threshold=THRESHOLD, risk=None)
    tf = ds.bars[ds.meta["symbol"].iloc[0]].index[1] - ds.bars[ds.meta["symbol"].iloc[0]].index[0]
    return sim.run(ds.bars, from_predictions(pred), ds.instruments, tf)[0]


def _notional_returns(res, ds, pred) -> pd.Series:
    """The engine's per-bar P&L in the backtest's units, on the backtest's bars."""
    series = []
    pos = res.positions
    for sym, sub in pred.groupby("symbol", sort=True):
        frame = ds.bars[sym]
        p = pos[pos["symbol"] == sym].set_index("timestamp")["pnl"].reindex(frame.index)
        r = np.zeros(len(frame))
        pv = ds.instruments[sym].point_value
        for tr in res.trades[res.trades["symbol"] == sym].itertuples():
            a, b = frame.index.get_indexer([tr.entry_time, tr.exit_time])
            notional = tr.qty * pv * tr.entry_ref
            r[a:b + 1] = p.iloc[a:b + 1].to_numpy() / notional
            r[a] -= tr.cost_return / 2  # the exit's half of the round trip, paid up front
            r[b] += tr.cost_return / 2
        t, exit_idx = sub["bar_idx"].to_numpy(), sub["exit_idx"].to_numpy()
        lo, hi = t[0] + 1, max(exit_idx.max(), t[-1] + 1)
        series.append(pd.Series(r[lo:hi + 1], index=frame.index[lo:hi + 1], name=sym))
    return pd.concat(series, axis=1, sort=True).fillna(0.0).mean(axis=1)


@pytest.mark.parametrize("split", ["val", "test"])
def test_engine_reproduces_the_backtest(phase1, split):
    cfg, ds = phase1
    pred = _widths(cfg, ds, _predictions(ds, split, seed={"val": 1, "test": 2}[split]))
    bt = run_backtest(pred, ds.bars, ds.bars_per_year, threshold=THRESHOLD)
    res = _simulate(ds, pred, ds.horizon)
    eng = res.trades.sort_values(["symbol", "entry_time"]).reset_index(drop=True)
    ref = bt.trades.sort_values(["symbol", "entry_time"]).reset_index(drop=True)
    assert len(ref) > 20 and set(ref["symbol"]) == {"MES", "MGC"}
    assert len(eng) == len(ref)
    assert (eng["symbol"] == ref["symbol"]).all()
    assert (eng["entry_time"].to_numpy() == ref["entry_time"].to_numpy()).all()
    assert (eng["exit_time"].to_numpy() == ref["exit_time"].to_numpy()).all()
    np.testing.assert_array_equal(eng["side"].to_numpy(), ref["side"].to_numpy())
    np.testing.assert_array_equal(eng["entry_ref"].to_numpy(), ref["entry"].to_numpy())
    np.testing.assert_array_equal(eng["net_return"].to_numpy(), ref["net_return"].to_numpy())
    np.testing.assert_allclose(eng["exit_ref"], ref["exit"], rtol=1e-13)
    assert set(eng["exit_reason"]) <= {"upper", "lower", "ambiguous", "vertical"}
    # net P&L in currency is the same trade in points x point value, net of both sides' costs
    pv = eng["symbol"].map({s: i.point_value for s, i in ds.instruments.items()})
    np.testing.assert_allclose(eng["net_pnl"], eng["net_return"] * eng["entry_ref"] * pv,
                               rtol=1e-9, atol=1e-9)
    # per-bar returns and the portfolio metrics
    r = _notional_returns(res, ds, pred)
    assert r.index.equals(bt.equity.index)
    np.testing.assert_allclose((1 + r).cumprod().to_numpy(), bt.equity.to_numpy(), rtol=1e-12)
    got = portfolio_metrics(r, ref, ds.bars_per_year)
    for key, value in bt.metrics.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # equity in currency: the initial capital plus every trade's net P&L (all closed)
    assert res.summary["open_positions"] == {"MES": 0.0, "MGC": 0.0}
    final = res.equity["equity"].iloc[-1]
    assert final == pytest.approx(100_000 + eng["net_pnl"].sum(), abs=1e-6)


def test_meta_labels_take_the_primary_side(phase1):
    """Meta-labels: class +1 trades the primary ``side``, as in the backtest."""
    cfg, ds = phase1
    pred = _widths(cfg, ds, _predictions(ds, "test", seed=7))
    pred["side"] = np.where(np.arange(len(pred)) % 3 == 0, -1, 1)
    bt = run_backtest(pred, ds.bars, ds.bars_per_year, threshold=THRESHOLD)
    res = _simulate(ds, pred, ds.horizon)
    eng = res.trades.sort_values(["symbol", "entry_time"]).reset_index(drop=True)
    ref = bt.trades.sort_values(["symbol", "entry_time"]).reset_index(drop=True)
    assert len(ref) > 10
    np.testing.assert_array_equal(eng["side"].to_numpy(), ref["side"].to_numpy())
    np.testing.assert_array_equal(eng["net_return"].to_numpy(), ref["net_return"].to_numpy())


def test_prediction_log_outcomes_are_the_phase1_labels(phase1, tmp_path):
    """The simulation's prediction log resolves each decision to exactly its Phase-1 label,
    and records the contracts ordered at the decisions that traded."""
    from factory.monitoring import PredictionLog
    from factory.simulation.predictions import prediction_log

    cfg, ds = phase1
    pred = _widths(cfg, ds, _predictions(ds, "test", seed=3)).reset_index(drop=True)
    res = _simulate(ds, pred, ds.horizon)
    tf = ds.bars["MES"].index[1] - ds.bars["MES"].index[0]
    feats = ds.X.iloc[ds.rows("test")].reset_index(drop=True)
    log = prediction_log(pred, res, THRESHOLD, ds.horizon, tf, feats, model="test")
    assert log.resolve(ds.bars, ds.instruments) == len(pred)
    f = PredictionLog.read(log.write(tmp_path / "predictions_log.parquet")).frame()
    np.testing.assert_array_equal(f["outcome"].to_numpy(), pred["label"].to_numpy())
    np.testing.assert_array_equal(f["ret_long"].to_numpy(), pred["ret_long"].to_numpy())
    entered = set(zip(res.trades["symbol"], res.trades["decision_time"] - tf, strict=True))
    traded = [(s, t) in entered for s, t in zip(f["symbol"], f["timestamp"], strict=True)]
    assert f.loc[traded, "qty"].eq(1.0).all() and f.loc[~np.array(traded), "qty"].eq(0).all()
    assert sum(traded) == len(res.trades)
    assert f[[c for c in f if c.startswith("feat_")]].shape[1] == ds.X.shape[1]
