"""The per-regime breakdown and the run's label report, through one real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.evaluation.backtest import run_backtest
from factory.evaluation.metrics import classification_metrics
from factory.evaluation.regime_report import (
    STATES,
    RegimeSpec,
    regime_breakdown,
    regime_states,
    regime_table,
    symbol_returns,
)
from factory.experiment import run
from factory.features.catalog.regime import trend_regime, volatility_regime
from factory.phase1 import load_or_build
from tests.conftest import compose_config

SPEC = RegimeSpec(vol_window=20, vol_lookback=300, trend_window=50)


@pytest.fixture(scope="module")
def xgb_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("regimes")
    cfg = compose_config(root, "model=xgboost", "model.n_estimators=40", "model.n_jobs=1",
                         "evaluation.plots=true", "evaluation.regimes.vol_lookback=300")
    run(cfg)
    out = Path(cfg.paths.output_dir)
    ds = load_or_build(cfg)[0]
    pred = pd.read_parquet(out / "predictions" / "test.parquet")
    return out, ds, pred


def test_states_are_the_registry_buckets_named(xgb_run):
    _, ds, _ = xgb_run
    bars = ds.bars["MES"]
    states = regime_states(bars, SPEC)
    vol = volatility_regime(bars, window=20, lookback=300)["vol_regime_20_300"]
    trend = trend_regime(bars, window=50)["trend_regime_50"]
    for kind, bucket in (("volatility", vol), ("trend", trend)):
        names = np.array([*STATES[kind], "unknown"], dtype=object)
        expect = names[np.where(np.isnan(bucket), 3, np.nan_to_num(bucket) + 1).astype(int)]
        np.testing.assert_array_equal(states[kind], expect)
    assert (states["volatility"][:319] == "unknown").all()  # warm-up: window + lookback - 1
    assert set(states["volatility"][319:]) == {"low", "normal", "high"}


def test_symbol_returns_add_up_to_the_portfolio(xgb_run):
    _, ds, pred = xgb_run
    bt = run_backtest(pred, ds.bars, ds.bars_per_year, 0.45)
    series = symbol_returns(pred, ds, bt)
    port = pd.concat(series.values(), axis=1, sort=True).fillna(0.0).mean(axis=1)
    np.testing.assert_allclose((1 + port).cumprod().to_numpy(), bt.equity.to_numpy(),
                               rtol=1e-12)
    assert sum(float(s.sum()) for s in series.values()) == pytest.approx(
        bt.trades["net_return"].sum(), abs=1e-12)  # each trade's bars sum to its net return


def test_breakdown_partitions_rows_trades_and_bars(xgb_run):
    _, ds, pred = xgb_run
    bt = run_backtest(pred, ds.bars, ds.bars_per_year, 0.45)
    out = regime_breakdown(pred, ds, bt, SPEC)
    series = symbol_returns(pred, ds, bt)
    for kind in ("volatility", "trend"):
        block = out[kind]
        assert set(STATES[kind]) <= set(block)
        assert sum(m["n_samples"] for m in block.values()) == len(pred)
        assert sum(m["n_trades"] for m in block.values()) == bt.metrics["n_trades"]
        assert sum(m["n_bars"] for m in block.values()) == sum(len(s) for s in series.values())
    # one state by hand: F1 of the rows decided in high volatility, Sharpe of its bars
    states = {s: regime_states(ds.bars[s], SPEC)["volatility"] for s in ds.bars}
    decided = np.array([states[s][b] for s, b in zip(pred["symbol"], pred["bar_idx"],
                                                     strict=True)])
    high = decided == "high"
    cls = classification_metrics(pred["label"].to_numpy()[high] + 1,
                                 pred[["p_short", "p_flat", "p_long"]].to_numpy()[high])
    assert out["volatility"]["high"]["f1_macro"] == pytest.approx(cls["f1_macro"])
    r = np.concatenate([s.to_numpy()[states[sym][ds.bars[sym].index.get_indexer(s.index) - 1]
                                     == "high"] for sym, s in series.items()])
    assert out["volatility"]["high"]["sharpe"] == pytest.approx(
        r.mean() / r.std(ddof=1) * np.sqrt(ds.bars_per_year))


def test_metrics_json_has_the_label_and_regime_reports(xgb_run):
    out, ds, _ = xgb_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"val", "test", "info"}
    for split in ("val", "test"):
        m = metrics[split]
        labels = m["labels"]
        assert labels["n_rows"] == len(ds.rows(split))
        assert sum(labels["shares"].values()) == pytest.approx(1.0)
        assert 0 < labels["vertical_share"] < 1 and 1 <= labels["hold_median"] <= ds.horizon
        assert 0 < labels["cost_to_width"] < 0.5
        assert m["oracle_sharpe"] > max(m["sharpe"], 0) and m["oracle_n_trades"] > 0
        assert m["gross_sharpe"] >= m["sharpe"] and m["gross_sharpe_se"] > 0
        for kind, states in m["regimes"].items():
            assert set(STATES[kind]) <= set(states)
            assert {"sharpe", "win_rate", "n_trades", "f1_macro"} <= set(states["normal"]
                                                                         if kind == "volatility"
                                                                         else states["flat"])
    table = regime_table(metrics)
    assert "volatility:high" in table and "trend:up" in table
    for split in ("val", "test"):
        assert (out / "plots" / f"equity_by_regime_{split}.png").stat().st_size > 5000
