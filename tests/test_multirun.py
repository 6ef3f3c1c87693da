"""Slow end-to-end subprocess runs of the real run.py: a multirun and an Optuna sweep."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

SMALL = ["data.days=21", "cv.embargo_bars=100", "cv.purge_bars=20", "tracker=none",
         "evaluation.plots=false"]


def _run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "run.py", "-m", *SMALL, f"paths.cache_dir={tmp_path / 'cache'}",
           f"hydra.sweep.dir={tmp_path / 'multirun'}", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_multirun_six_models_computes_phase1_once(tmp_path):
    models = "xgboost,lightgbm,catboost,random_forest,logistic,svm"
    out = _run(tmp_path, f"model={models}")
    log = out.stdout + out.stderr
    assert log.count("phase1 computed") == 1
    assert log.count("phase1 cache hit") == 5
    assert "multirun summary (6 jobs" in log
    assert (tmp_path / "multirun" / "summary.csv").is_file()
    runs = sorted((tmp_path / "multirun").glob("*_*/metrics.json"))
    assert len(runs) == 6
    keys = {json.loads(p.read_text())["info"]["phase1_key"] for p in runs}
    assert len(keys) == 1


@pytest.mark.slow
def test_optuna_sweep_runs_resumes_and_writes_best_params(tmp_path):
    import optuna

    args = ["+sweeps=xgboost", "hydra.sweeper.n_trials=8", "model.n_estimators=30",
            f"hydra.sweeper.storage_dir={tmp_path / 'sweeps'}", "hydra.sweeper.study_name=t"]
    _run(tmp_path, *args)
    storage = f"sqlite:///{tmp_path / 'sweeps' / 't.db'}"
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == 8
    _run(tmp_path, *args)
    study = optuna.load_study(study_name="t", storage=storage)
    assert len(study.trials) == 16
    best = yaml.safe_load((tmp_path / "sweeps" / "t.best.yaml").read_text())
    assert best["best_value"] == pytest.approx(study.best_value)
    assert set(best["best_params"]) == {"model.learning_rate", "model.max_depth",
                                        "model.min_child_weight", "model.subsample",
                                        "model.colsample_bytree", "model.reg_lambda"}
    assert 0 < best["best_value"] <= 1


def test_multirun_summary_table(tmp_path):
    from factory.tracking.multirun_summary import collect

    for i, (model, f1) in enumerate([("a", 0.4), ("b", 0.5)]):
        job = tmp_path / f"{i}_{model}"
        job.mkdir()
        split = {"f1_macro": f1, "accuracy": 0.5, "log_loss": 1.0, "sharpe": 0.1,
                 "max_drawdown": -0.1, "n_trades": 10}
        (job / "metrics.json").write_text(json.dumps(
            {"val": split, "test": split, "info": {"model": model, "horizon": 20}}))
    frame = collect(tmp_path)
    assert frame["model"].tolist() == ["b", "a"]  # best val.f1_macro first
    assert frame.loc[frame["model"] == "b", "test.f1_macro"].item() == 0.5


@pytest.mark.slow
def test_owner_example_mixes_tabular_and_sequence_models(tmp_path):
    """`python run.py -m model=xgboost,lightgbm,lstm`: tabular and torch jobs under identical
    data, labels, splits and costs; the summary compares them and reports PBO / DSR."""
    out = _run(tmp_path, "model=xgboost,lightgbm,lstm", "trainer.progress=false",
               "trainer.num_threads=1")
    log = out.stdout + out.stderr
    assert "multirun summary (3 jobs" in log
    runs = {p.parent.name.split("_", 1)[1]: json.loads(p.read_text())
            for p in (tmp_path / "multirun").glob("*_*/metrics.json")}
    assert set(runs) == {"xgboost", "lightgbm", "lstm"}
    assert runs["lstm"]["info"]["adapter"] == "sequence"
    assert runs["lstm"]["info"]["family"] == "neural"
    stats = json.loads((tmp_path / "multirun" / "overfitting.json").read_text())
    assert stats["n_strategies"] == 3 and 0 <= stats["deflated_sharpe"] <= 1
    best = runs[stats["best_job"].split("_", 1)[1]]
    assert best["multirun"]["best_job"] == stats["best_job"]
