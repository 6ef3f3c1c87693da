"""model=ibs_rule: the IBS + RSI(2) + volume-gate rule as a model.

The rule's signals by hand on constructed rows; its probability contract; the refusals (another
feature set, bad thresholds); save/load; and a real run through the framework, where the run's
predictions are exactly the rule applied to the Phase-1 feature columns, those columns are
IBS / RSI(2) / the volume percentile of the bars, and the bundle reproduces the predictions.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import talib
from omegaconf import OmegaConf

from factory.bundle.reader import Bundle
from factory.errors import FactoryError
from factory.experiment import run
from factory.models.artifacts import load_model, save_model
from factory.models.rules.ibs import IBSRule
from factory.phase1 import load_or_build
from tests.conftest import CONF, ROOT, TINY

# rows: ibs, rsi_2 (RSI / 100 - 0.5), volume percentile
ROWS = np.array([
    [0.10, -0.45, 0.90],   # long: low IBS, RSI 5, busy bar
    [0.10, -0.45, 0.20],   # long setup, quiet bar: the volume gate says no
    [0.10, 0.00, 0.90],    # low IBS but RSI 50: the RSI filter says no
    [0.95, 0.45, 0.60],    # short: high IBS, RSI 95
    [0.50, 0.00, 0.99],    # nothing
    [0.20, -0.30, 0.50],   # long exactly at the thresholds (<= / >=)
])
LABELS = np.array([1, 0, 0, -1, 0, 1])


def test_signals_by_hand():
    rule = IBSRule().fit(ROWS, LABELS)
    assert rule.signal(ROWS).tolist() == [1, 0, 0, -1, 0, 1]
    assert IBSRule(sides="long").fit(ROWS, LABELS).signal(ROWS).tolist() == [1, 0, 0, 0, 0, 1]
    assert IBSRule(sides="short").fit(ROWS, LABELS).signal(ROWS).tolist() == [0, 0, 0, -1, 0, 0]
    assert IBSRule(volume_min=0.0).fit(ROWS, LABELS).signal(ROWS).tolist() == [1, 1, 0, -1, 0, 1]
    assert rule.signal_rates_ == pytest.approx({"long": 2 / 6, "short": 1 / 6})


def test_probabilities_follow_the_signal():
    rule = IBSRule(confidence=0.8).fit(ROWS, LABELS)
    proba = rule.predict_proba(ROWS)
    assert proba.shape == (6, 3) and list(rule.classes_) == [-1, 0, 1]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba.max(axis=1) == pytest.approx(0.8)) and \
        rule.predict(ROWS).tolist() == rule.signal(ROWS).tolist()
    # a class never seen in training: the columns of the classes seen, still summing to one
    seen = IBSRule().fit(ROWS[LABELS >= 0], LABELS[LABELS >= 0])
    out = seen.predict_proba(ROWS)
    assert list(seen.classes_) == [0, 1] and out.shape == (6, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert out[0, 1] == pytest.approx(0.9)  # long as before
    assert out[3].tolist() == pytest.approx([0.95, 0.05])  # the unseen short goes to flat


def test_refuses_other_feature_sets_and_bad_thresholds():
    with pytest.raises(FactoryError, match=r"reads 3 feature columns .*features=rule_inputs"):
        IBSRule().fit(np.zeros((5, 4)), [0, 1, 0, 1, -1])
    wrong = ROWS.copy()
    wrong[:, 1] = wrong[:, 1] * 100 + 50  # RSI on 0-100 instead of the catalog's -0.5..0.5
    with pytest.raises(FactoryError, match="column 1 should be rsi_2"):
        IBSRule().fit(wrong, LABELS)
    with pytest.raises(FactoryError, match="ibs_low < ibs_high"):
        IBSRule(ibs_low=0.9, ibs_high=0.8).fit(ROWS, LABELS)
    with pytest.raises(FactoryError, match="confidence"):
        IBSRule(confidence=0.3).fit(ROWS, LABELS)


def test_save_load_roundtrip(tmp_path):
    rule = IBSRule(ibs_low=0.15, rsi_low=12.0).fit(ROWS, LABELS)
    save_model(rule, tmp_path, ["ibs", "rsi_2", "vpct_100"])
    loaded, manifest = load_model(tmp_path)
    assert loaded.get_params() == rule.get_params() and manifest["files"]
    np.testing.assert_array_equal(loaded.predict_proba(ROWS), rule.predict_proba(ROWS))


@pytest.fixture(scope="module")
def rule_run(tmp_path_factory):
    from tests.conftest import compose_config

    tmp = tmp_path_factory.mktemp("rule")
    cfg = compose_config(tmp, "model=ibs_rule", "features=rule_inputs", "model.volume_min=0.3")
    run(cfg)
    return cfg, tmp / "run"


def test_a_run_trades_exactly_the_rule_on_the_feature_columns(rule_run):
    cfg, out = rule_run
    ds, _, _ = load_or_build(cfg)
    assert list(ds.X.columns) == ["ibs", "rsi_2", "vpct_100"]
    sym = ds.meta["symbol"].iloc[0]
    rows = np.flatnonzero(ds.meta["symbol"].to_numpy() == sym)
    bars = ds.bars[sym]
    idx = ds.meta["bar_idx"].to_numpy()[rows]
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    ibs = np.where(h > lo, (c - lo) / np.where(h > lo, h - lo, 1.0), 0.5)
    np.testing.assert_allclose(ds.X["ibs"].to_numpy()[rows], ibs[idx], atol=1e-6)
    rsi = talib.RSI(c, timeperiod=2)[idx] / 100 - 0.5
    np.testing.assert_allclose(ds.X["rsi_2"].to_numpy()[rows], rsi, atol=1e-5)
    pred = pd.read_parquet(out / "predictions" / "test.parquet")
    rule = IBSRule(volume_min=0.3).fit(ds.X.to_numpy()[ds.rows("train")],
                                       ds.meta["label"].to_numpy()[ds.rows("train")])
    keys = pd.MultiIndex.from_arrays([ds.meta["symbol"], ds.meta["bar_idx"]])
    at = keys.get_indexer(pd.MultiIndex.from_arrays([pred["symbol"], pred["bar_idx"]]))
    expected = rule.signal(ds.X.to_numpy()[at])
    got = pred[["p_short", "p_flat", "p_long"]].to_numpy().argmax(axis=1) - 1
    assert (got == expected).all() and (expected != 0).sum() > 5
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["info"]["family"] == "rule" and metrics["test"]["n_trades"] > 0


def test_the_rule_bundle_reproduces_its_predictions(rule_run):
    cfg, out = rule_run
    bundle = Bundle.load(out / "bundle")
    barset = build_data(cfg)
    pred = bundle.predict(barset)
    test = pd.read_parquet(out / "bundle" / "predictions_test.parquet")
    merged = test.merge(pred, on=["timestamp", "symbol"], suffixes=("", "_b"))
    assert len(merged) == len(test)
    for col in ("p_short", "p_flat", "p_long"):
        np.testing.assert_array_equal(merged[col].to_numpy(), merged[f"{col}_b"].to_numpy())


def build_data(cfg):
    from factory.config import build

    return build(cfg.data).load()


def test_sweep_file_searches_valid_thresholds():
    from hydra_plugins.factory_optuna_sweeper._search_space import parse_overrides

    raw = OmegaConf.load(ROOT / "sweeps" / "ibs_rule.yaml")
    params = OmegaConf.to_container(raw.hydra.sweeper.params)
    search, fixed = parse_overrides([f"{k}={v}" for k, v in params.items()])
    assert not fixed and raw.objective == "val.sharpe"
    names = {k.split(".", 1)[1] for k in search}
    assert names <= set(IBSRule().get_params())
    # any sampled point is a valid rule: the low and high ranges never cross
    assert search["model.ibs_low"].high < search["model.ibs_high"].low
    assert search["model.rsi_low"].high < search["model.rsi_high"].low
    assert (CONF / "features" / "rule_inputs.yaml").is_file()


@pytest.mark.slow
def test_optuna_tunes_the_thresholds_on_validation(tmp_path):
    """Three trials of sweeps/ibs_rule.yaml through run.py: each a valid rule scored on
    val.sharpe, the best thresholds written."""
    cmd = [sys.executable, "run.py", "-m", "+sweeps=ibs_rule", "hydra.sweeper.n_trials=3",
           *[t for t in TINY if not t.startswith("features=")],
           f"hydra.sweeper.storage_dir={tmp_path / 'sweeps'}", "hydra.sweeper.study_name=ibs",
           f"hydra.sweep.dir={tmp_path / 'multirun'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    best = OmegaConf.load(tmp_path / "sweeps" / "ibs.best.yaml")
    assert 0.05 <= best.best_params["model.ibs_low"] <= 0.4
    assert np.isfinite(best.best_value)
