"""End-to-end runs of the real pipeline through the compose API, asserting values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from factory.experiment import run
from tests.conftest import CONF, model_names, yaml_test_sizes

REQUIRED = {"accuracy", "f1_macro", "log_loss", "sharpe", "sortino", "max_drawdown", "win_rate",
            "profit_factor", "n_trades"}


def _trained_by(model: str) -> str:
    node = OmegaConf.load(CONF / "model" / f"{model}.yaml")
    return "torch" if "trainer" in node else "zero_shot" if "weights" in node else "tabular"


TABULAR = [m for m in model_names() if _trained_by(m) == "tabular"]
OTHERS = [m for m in model_names() if _trained_by(m) != "tabular"]


@pytest.mark.parametrize("model", TABULAR)
def test_each_model_runs_end_to_end(make_cfg, tmp_path, model):
    sizes = yaml_test_sizes(CONF / "model" / f"{model}.yaml")  # the YAML's own test size
    cfg = make_cfg(f"model={model}", "evaluation.plots=true",
                   *(f"model.{k}={v}" for k, v in sizes.items()))
    objective = run(cfg)
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"val", "test", "info"}
    for split in ("val", "test"):
        m = metrics[split]
        assert REQUIRED <= set(m)
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["f1_macro"] <= 1 and m["log_loss"] > 0
        assert -1 <= m["max_drawdown"] <= 0 and 0 <= m["win_rate"] <= 1 and m["n_trades"] >= 0
        assert np.isfinite(m["sharpe"]) and np.isfinite(m["sortino"])
    assert objective == pytest.approx(metrics["val"]["f1_macro"])
    # chance level for 3 classes is ~0.33 accuracy: a real model on this data does better
    assert metrics["val"]["accuracy"] > 0.3
    for split in ("val", "test"):
        pred = pd.read_parquet(out / "predictions" / f"{split}.parquet")
        assert {"timestamp", "symbol", "label", "p_short", "p_flat", "p_long"} <= set(pred)
        np.testing.assert_allclose(pred[["p_short", "p_flat", "p_long"]].sum(axis=1), 1,
                                   atol=1e-5)
        assert len(pred) == metrics[split]["n_samples"]
    for plot in ("equity_curve.png", "confusion_test.png", "feature_importance.png"):
        assert (out / "plots" / plot).stat().st_size > 1000
    assert (out / "config.yaml").is_file() and (out / "bundle" / "manifest.json").is_file()


def test_same_seed_same_metrics_and_cache_hit(make_cfg, tmp_path):
    first = run(make_cfg("model=xgboost", "model.n_estimators=40"))
    m1 = json.loads((tmp_path / "run" / "metrics.json").read_text())
    second = run(make_cfg("model=xgboost", "model.n_estimators=40"))
    m2 = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert first == second
    assert m1["val"] == m2["val"] and m1["test"] == m2["test"]
    assert m1["info"]["phase1_cache_hit"] is False and m2["info"]["phase1_cache_hit"] is True
    assert m1["info"]["phase1_key"] == m2["info"]["phase1_key"]


def test_cache_key_follows_phase1_configs_only(make_cfg):
    from factory.phase1 import phase1_key

    base = phase1_key(make_cfg())
    assert phase1_key(make_cfg("model=logistic")) == base  # models share Phase 1
    assert phase1_key(make_cfg("horizon=5")) != base
    assert phase1_key(make_cfg("features.groups.rsi.periods=[7]")) != base
    assert phase1_key(make_cfg("features=boosting_optimal")) != base
    assert phase1_key(make_cfg("cv.purge_bars=30")) != base
    assert phase1_key(make_cfg("data.seed=1")) != base
    # k-fold splitters keep the holdout cut, so they share the holdout's Phase-1 entry
    for cv in ("cv=purged_kfold", "cv=walk_forward", "cv=cpcv"):
        assert phase1_key(make_cfg(cv)) == base, cv
    assert phase1_key(make_cfg("cv=purged_kfold", "cv.n_splits=3")) == base


def test_wandb_offline_run_written(make_cfg, tmp_path):
    run(make_cfg("tracker=wandb", "model.n_estimators=20"))
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_editing_a_data_file_invalidates_the_cache(make_cfg, tmp_path):
    from factory.data.synthetic import SyntheticSource
    from factory.phase1 import phase1_key

    path = tmp_path / "mes.csv"
    bars = SyntheticSource(days=3, seed=1).load().bars["MES"].reset_index()
    bars.to_csv(path, index=False)
    key = phase1_key(make_cfg("data=csv", f"data.path={path}"))
    assert phase1_key(make_cfg("data=csv", f"data.path={path}")) == key
    bars.loc[5, "volume"] += 1
    bars.to_csv(path, index=False)
    assert phase1_key(make_cfg("data=csv", f"data.path={path}")) != key


def test_default_feature_set_end_to_end(make_cfg, tmp_path):
    """The models' own default feature set (boosting_optimal: catalog, ladder, HMM, fracdiff)."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default = compose("config", overrides=["model=xgboost"])
    assert default.features.name == "boosting_optimal"
    cfg = make_cfg("model=xgboost", "features=boosting_optimal", "data.days=28",
                   "model.n_estimators=40")
    run(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["info"]["n_features"] > 60 and 0.2 < metrics["val"]["accuracy"] <= 1
    report = json.loads((tmp_path / "run" / "validation_report.json").read_text())
    assert report["features_dropped"]["correlated"] and report["feature_warmups"]["rsi"] == 14
    assert {"daily_break", "weekend"} <= set(report["symbols"]["MES"]["gaps"])


def test_meta_labeling_end_to_end_trades_the_primary_side(make_cfg, tmp_path):
    cfg = make_cfg("labeling.meta={side_from: momentum, lookback: 20}", "model.n_estimators=30")
    run(cfg)
    pred = pd.read_parquet(tmp_path / "run" / "predictions" / "test.parquet")
    assert set(pred["label"].unique()) <= {0, 1} and set(pred["side"].unique()) <= {-1, 1}
    trades = pd.read_parquet(tmp_path / "run" / "predictions" / "test_trades.parquet")
    assert set(trades["side"].unique()) == {-1, 1}  # shorts too: "take" is not "go long"


@pytest.mark.slow
@pytest.mark.parametrize("model", OTHERS)
def test_every_torch_and_zero_shot_model_runs_end_to_end(make_cfg, tmp_path, model):
    """Every sequence / multires / zero-shot model through the real pipeline (1 epoch;
    zero-shot models on tiny random checkpoints of the real classes)."""
    # one epoch on one thread (OpenMP spin-waits slow tiny fits down), short windows and the
    # YAML's own test size: what is tested is the wiring, not the network's capacity
    sizes = yaml_test_sizes(CONF / "model" / f"{model}.yaml")
    extra = ["trainer.max_epochs=1", "trainer.progress=false", "trainer.num_threads=1",
             "adapter.seq_len=16", *(f"{k}={v}" for k, v in sizes.items())]
    if _trained_by(model) == "zero_shot":
        from tests.test_foundation import tiny_chronos_bolt, tiny_timesfm

        build_tiny = tiny_chronos_bolt if model == "chronos_bolt" else tiny_timesfm
        extra = [f"model.weights={build_tiny(tmp_path / 'weights')}", "adapter.context_len=64"]
    cfg = make_cfg(f"model={model}", *extra)
    objective = run(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert REQUIRED <= set(metrics["test"]) and objective == pytest.approx(
        metrics["val"]["f1_macro"])
    assert (tmp_path / "run" / "bundle" / "predictor" / "manifest.json").is_file()
