"""K-fold runs, the out-of-fold store, and ensembles through the real composed config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.adapters.tabular import TabularAdapter
from factory.config import build
from factory.experiment import run
from factory.phase1 import load_or_build
from factory.tracking.multirun_summary import overfitting_report
from factory.training.cross_validation import cross_validate
from factory.training.predictor import ModelPredictor

XGB = ["model.n_estimators=40", "model.n_jobs=1"]
BASE = ("ensemble.base_overrides={xgboost:['features=core','model.n_estimators=40',"
        "'model.n_jobs=1'],logistic:['features=core'],lstm:['features=core',"
        "'trainer.max_epochs=1','adapter.seq_len=16']}")
BASE_TAB = ("ensemble.base_overrides={xgboost:['features=core','model.n_estimators=40',"
            "'model.n_jobs=1'],logistic:['features=core']}")
FOLDS = ["cv=purged_kfold", "cv.n_splits=3"]


def test_purged_kfold_run_writes_fold_metrics_and_oof(make_cfg):
    cfg = make_cfg("model=xgboost", *FOLDS, *XGB)
    run(cfg)
    out = Path(cfg.paths.output_dir)
    folds = pd.read_csv(out / "folds.csv")
    assert list(folds["split"]) == [0, 1, 2]
    assert {"n_train", "n_test", "n_purged", "n_embargoed", "f1_macro", "sharpe"} <= set(folds)
    oof = pd.read_parquet(out / "predictions" / "oof.parquet")
    assert len(oof) == folds["n_predicted"].sum() and not oof["row"].duplicated().any()
    np.testing.assert_allclose(oof[["p_short", "p_flat", "p_long"]].sum(axis=1), 1.0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cv"]["n_splits"] == 3 and metrics["cv"]["n_oof_rows"] == len(oof)
    assert 0 <= metrics["cv"]["oof"]["f1_macro"] <= 1
    ds = load_or_build(cfg)[0]
    assert set(ds.meta["split"].to_numpy()[oof["row"]]) <= {"train", "val", "gap"}  # no test
    entries = list((Path(cfg.paths.cache_dir) / "oof").glob("*/*/entry.json"))
    assert len(entries) == 1
    assert {p.name for p in entries[0].parent.glob("*.parquet")} == {
        "oof.parquet", "val.parquet", "test.parquet"}
    assert (entries[0].parent / "model" / "manifest.json").is_file()  # the fitted model too


class RecordingAdapter(TabularAdapter):
    """Logs every row set a model is fitted or early-stopped on."""

    log: list[np.ndarray] = []

    def fit(self, ds, rows, model=None):
        RecordingAdapter.log.append(np.asarray(rows))
        return super().fit(ds, rows, model)


def test_oof_prediction_comes_from_a_model_that_never_saw_the_row(make_cfg):
    cfg = make_cfg("model=xgboost", *FOLDS, *XGB)
    ds = load_or_build(cfg)[0]
    splitter = build(cfg.cv)
    fitted = []
    RecordingAdapter.log = fitted
    predictor = ModelPredictor(build(cfg.model), RecordingAdapter())
    res = cross_validate(predictor, ds, splitter, lambda pred: {}, val_fraction=0.2)
    meta = ds.meta
    for split, trained in enumerate(fitted):
        oof_rows = res.oof.loc[res.oof["split"] == split, "row"].to_numpy()
        assert len(oof_rows) and not np.intersect1d(oof_rows, trained).size
        for sym in meta["symbol"].unique():
            t = trained[meta["symbol"].to_numpy()[trained] == sym]
            o = oof_rows[meta["symbol"].to_numpy()[oof_rows] == sym]
            lo, hi = meta["bar_idx"].to_numpy()[o].min(), meta["exit_idx"].to_numpy()[o].max()
            start, end = meta["bar_idx"].to_numpy()[t], meta["exit_idx"].to_numpy()[t]
            overlap = (end >= lo - splitter.purge_bars) & (start <= hi + splitter.purge_bars)
            assert not overlap.any(), f"split {split} {sym}: a training label overlaps the test"


def test_stacking_with_a_sequence_model_gives_base_vs_ensemble_table(make_cfg, tmp_path):
    cfg = make_cfg("ensemble=stacking", "ensemble.base_models=[xgboost,logistic,lstm]", BASE,
                   *FOLDS, "trainer.progress=false", "trainer.num_threads=1")
    run(cfg)
    out = Path(cfg.paths.output_dir)
    report = pd.read_csv(out / "ensemble_report.csv", index_col="model")
    names = ["xgboost", "logistic", "lstm"]
    assert list(report.index) == ["ensemble", *[f"{n} ({rows} rows)" for n in names
                                                for rows in ("common", "own")]]
    assert report["test.f1_macro"].between(0, 1).all()
    metrics = json.loads((out / "metrics.json").read_text())
    ens = metrics["ensemble"]
    assert ens["method"] == "stacking" and ens["combiner"]["kind"] == "logistic"
    # the lstm loses each segment's first seq_len - 1 rows: the ensemble predicts fewer rows
    rows = ens["rows"]["test"]
    assert rows["ensemble"] == min(rows[n] for n in names) < max(rows[n] for n in names)
    assert metrics["info"]["family"] == "ensemble" and set(metrics["info"]) >= {
        "model", "adapter", "n_features", "n_train", "fit_seconds", "epochs"}
    assert set(ens["ablation"]["delta"]) == {"xgboost", "logistic", "lstm"}
    corr = pd.read_csv(out / "diversity_correlation.csv", index_col=0)
    assert corr.shape == (3, 3) and np.allclose(np.diag(corr), 1.0)
    combiner = json.loads((out / "bundle" / "predictor" / "combiner.json").read_text())
    assert combiner["class"] == "factory.ensemble.meta_learners.LogisticMeta"
    assert {p.name for p in (out / "bundle" / "predictor" / "bases").iterdir()} == set(names)
    # a second ensemble over the same base models reuses their stored predictions
    entries = sorted((Path(cfg.paths.cache_dir) / "oof").glob("*/*/entry.json"))
    assert len(entries) == 3
    again = make_cfg("ensemble=voting", "ensemble.combiner.weights=learned",
                     "ensemble.base_models=[xgboost,logistic,lstm]", BASE, *FOLDS,
                     f"paths.output_dir={tmp_path / 'voting'}", "trainer.progress=false",
                     "trainer.num_threads=1")
    run(again)
    assert sorted((Path(cfg.paths.cache_dir) / "oof").glob("*/*/entry.json")) == entries
    weights = json.loads((tmp_path / "voting" / "metrics.json").read_text())
    assert sum(weights["ensemble"]["combiner"]["weights"].values()) == pytest.approx(1.0)


def test_regime_aware_stacking_and_blending(make_cfg, tmp_path):
    base = "ensemble.base_models=[xgboost,logistic]"
    cfg = make_cfg("ensemble=stacking", "ensemble/combiner=regime_aware", base, BASE_TAB,
                   *FOLDS, "features=ensemble_base")
    run(cfg)
    ens = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["ensemble"]
    assert ens["combiner"]["kind"] == "regime_aware"
    blend = make_cfg("ensemble=blending", base, BASE_TAB, f"paths.output_dir={tmp_path / 'b'}")
    run(blend)
    ens = json.loads((tmp_path / "b" / "metrics.json").read_text())["ensemble"]
    assert ens["method"] == "blending" and ens["n_fit_rows"] > 100


def test_cpcv_run_reports_path_sharpes(make_cfg):
    cfg = make_cfg("model=logistic", "cv=cpcv", "cv.n_groups=4", "cv.n_test_groups=2")
    run(cfg)
    paths = pd.read_csv(Path(cfg.paths.output_dir) / "paths.csv")
    assert len(paths) == 3  # phi = C(3, 1)
    cv = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["cv"]
    assert cv["n_splits"] == 6 and cv["paths"]["n"] == 3


def test_overfitting_report_over_jobs(tmp_path):
    rng = np.random.default_rng(0)
    index = pd.date_range("2026-01-01", periods=640, freq="5min", tz="UTC")
    for j in range(4):
        job = tmp_path / f"{j}_m"
        (job / "predictions").mkdir(parents=True)
        drift = 0.002 if j == 0 else 0.0  # job 0 is truly better in every partition
        pd.DataFrame({"ret": drift + 0.01 * rng.standard_normal(len(index))}, index=index
                     ).to_parquet(job / "predictions" / "val_returns.parquet")
    frame = pd.DataFrame({"job": [f"{j}_m" for j in range(4)]})
    stats = overfitting_report(tmp_path, frame)
    assert stats["returns"] == "val" and stats["n_strategies"] == 4
    assert stats["pbo"] < 0.2
    assert 0.5 < stats["deflated_sharpe"] <= 1.0
