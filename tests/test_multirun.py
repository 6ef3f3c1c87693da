"""Multiruns: slow end-to-end subprocess runs of the real run.py (a multirun, an Optuna sweep,
failed jobs, the comparison report) and fast tests of the summary on synthetic job outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

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
    _run(tmp_path, *args, "hydra.sweeper.n_trials=16")  # n_trials is the study's total
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


# -- failed jobs, the comparison report, the deflated Sharpe of one trial (fast) ---------------
def _fake_job(sweep, name, model, horizon, f1, seed, n_rows=64, flat=False):
    """A job directory as run.py writes it: metrics.json, validation predictions and returns."""
    import numpy as np
    import pandas as pd

    job = sweep / name
    (job / "predictions").mkdir(parents=True)
    (job / ".hydra").mkdir()
    rng = np.random.default_rng(seed)
    split = {"f1_macro": f1, "accuracy": 0.5, "log_loss": 1.0, "sharpe": f1 - 0.4,
             "max_drawdown": -0.1, "n_trades": 10}
    (job / "metrics.json").write_text(json.dumps(
        {"val": split, "test": {**split, "f1_macro": f1 - 0.01, "sharpe": f1 - 0.45},
         "info": {"model": model, "horizon": horizon}}))
    stamps = pd.date_range("2024-01-01", periods=n_rows, freq="5min", tz="UTC")
    p_long = rng.uniform(0.1, 0.6, n_rows)
    pd.DataFrame({"timestamp": stamps, "symbol": "MES", "p_long": p_long,
                  "p_short": 0.7 - p_long}).to_parquet(job / "predictions" / "val.parquet")
    ret = np.zeros(n_rows) if flat else rng.normal(0.0, 1e-3, n_rows)
    pd.DataFrame({"ret": ret}, index=stamps).to_parquet(job / "predictions" / "val_returns.parquet")
    return job


def _failed_job(sweep, name, error):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    choices:\n      model: lstm\n")
    (job / ".hydra" / "config.yaml").write_text("horizon: 5\n")
    (job / "failed.json").write_text(json.dumps({"error": error}))


def test_comparison_report_on_synthetic_jobs(tmp_path):
    import pandas as pd

    from factory.tracking.multirun_summary import MultirunSummary

    for i, (model, horizon, f1) in enumerate([("xgboost", 5, 0.40), ("lightgbm", 5, 0.45),
                                              ("xgboost", 20, 0.50), ("lightgbm", 20, 0.42)]):
        _fake_job(tmp_path, f"{i}_{model}", model, horizon, f1, seed=i)
    _failed_job(tmp_path, "4_lstm", "model TorchClassifier takes 'sequence' input")
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    MultirunSummary("val.f1_macro").on_multirun_end(cfg)

    text = (tmp_path / "model_comparison.md").read_text()
    for part in ("## Objective (`val.f1_macro`)", "## Test Sharpe", "## Test F1 (macro)",
                 "## Best model per horizon", "### h5", "### h20", "## Selection statistics",
                 "Horizon 5:", "## Failed jobs", "model_comparison.png"):
        assert part in text, part
    assert "| xgboost | 0.4000 | 0.5000 |" in text  # models x horizons (h5, h20)
    assert "| 5 | lightgbm | 0.4500 |" in text and "| 20 | xgboost | 0.5000 |" in text
    assert "| 4_lstm | lstm | 5 | model TorchClassifier takes 'sequence' input |" in text
    assert (tmp_path / "model_comparison.png").stat().st_size > 1000
    csv = pd.read_csv(tmp_path / "model_comparison.csv")
    assert sorted(csv["status"]) == ["failed"] + ["ok"] * 4
    assert csv.loc[(csv["model"] == "lightgbm") & (csv["horizon"] == 20), "objective"].item() \
        == 0.42
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary.loc[summary["job"] == "4_lstm", "status"].item() == "failed"
    stats = json.loads((tmp_path / "overfitting.json").read_text())
    assert stats["n_strategies"] == 4 and stats["best_job"] == "2_xgboost"
    assert 0 <= stats["pbo"] <= 1 and 0 <= stats["deflated_sharpe"] <= 1


def test_validation_correlation_is_that_of_the_directional_views(tmp_path):
    import numpy as np

    from factory.tracking.comparison import best_per_model_horizon, correlation_by_horizon
    from factory.tracking.multirun_summary import collect

    _fake_job(tmp_path, "0_a", "a", 5, 0.4, seed=1)
    _fake_job(tmp_path, "1_b", "b", 5, 0.5, seed=2)
    best = best_per_model_horizon(collect(tmp_path), "val.f1_macro")
    corr = correlation_by_horizon(tmp_path, best)[5]
    import pandas as pd

    views = [pd.read_parquet(tmp_path / j / "predictions" / "val.parquet") for j in ("0_a", "1_b")]
    expected = np.corrcoef(*[v["p_long"] - v["p_short"] for v in views])[0, 1]
    assert corr.loc["a", "b"] == pytest.approx(expected) and corr.attrs["n_rows"] == 64


def test_deflated_sharpe_of_a_single_trial_is_undefined_with_the_reason(tmp_path):
    import warnings

    from factory.tracking.multirun_summary import collect, overfitting_report

    _fake_job(tmp_path, "0_xgboost", "xgboost", 20, 0.4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning, no NaN
        stats = overfitting_report(tmp_path, collect(tmp_path))
    assert stats["deflated_sharpe"] is None
    assert "at least 2 trials" in stats["deflated_sharpe_undefined"]
    assert stats["pbo_undefined"] == "needs at least 2 jobs"
    # two jobs, but one never traded: one finite Sharpe, still undefined (was NaN + warning)
    _fake_job(tmp_path, "1_flat", "flat", 20, 0.3, seed=1, flat=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = overfitting_report(tmp_path, collect(tmp_path))
    assert stats["deflated_sharpe"] is None and "got 1 finite of 2" in stats[
        "deflated_sharpe_undefined"]


def test_failed_job_leaves_its_error_line_in_failed_json_and_run_log(tmp_path):
    import logging

    from hydra.core.utils import JobReturn, JobStatus

    from factory.errors import FactoryError
    from factory.tracking.multirun_summary import MultirunSummary, failed_jobs

    job = tmp_path / "0_lstm"
    cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job)}}})
    handler = logging.FileHandler(tmp_path / "run.log")
    logging.getLogger().addHandler(handler)
    try:
        for error in (FactoryError("`adapter=tabular` does not fit lstm"), ValueError("boom\nx")):
            ret = JobReturn(overrides=["model=lstm"])
            ret.status = JobStatus.FAILED
            ret.return_value = error
            MultirunSummary().on_job_end(cfg, ret)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    log = (tmp_path / "run.log").read_text()
    assert "job failed: `adapter=tabular` does not fit lstm" in log
    assert "job failed: ValueError: boom" in log and "Traceback" not in log.split("boom")[0]
    (job / ".hydra").mkdir()
    assert failed_jobs(tmp_path)["error"].tolist() == ["ValueError: boom"]


def test_a_sweep_config_without_multirun_is_an_error():
    from hydra.types import RunMode

    from factory.errors import FactoryError
    from factory.tracking.sweep_mode import check_sweep_mode

    optuna_cfg = OmegaConf.create({"mode": RunMode.RUN, "sweeper": {
        "_target_": "hydra_plugins.factory_optuna_sweeper.optuna_sweeper.OptunaSweeper"}})
    with pytest.raises(FactoryError, match="sweeps need -m: .*python run.py -m \\+sweeps=xgboost"):
        check_sweep_mode(optuna_cfg, ["+sweeps=xgboost"])
    optuna_cfg.mode = RunMode.MULTIRUN
    check_sweep_mode(optuna_cfg, [])  # with -m: fine
    basic = OmegaConf.create({"mode": RunMode.RUN, "sweeper": {
        "_target_": "hydra_plugins.factory_basic_sweeper.basic_sweeper.FactoryBasicSweeper"}})
    check_sweep_mode(basic, [])  # a plain single run


def test_sweep_context_for_the_tracker(monkeypatch):
    from factory.tracking.base import STUDY_ENV, TRIAL_ENV, sweep_context

    monkeypatch.delenv(TRIAL_ENV, raising=False)
    assert sweep_context() is None
    monkeypatch.setenv(TRIAL_ENV, "7")
    monkeypatch.setenv(STUDY_ENV, "xgboost_h20")
    assert sweep_context() == {"study": "xgboost_h20", "trial": 7, "overrides": []}


# -- end to end: comparison, failed jobs, parallel jobs, sweep traps (slow) ---------------------
def _run_rc(tmp_path, *args: str, multirun: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "run.py", *(["-m"] if multirun else []), *SMALL, "features=core",
           f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'multirun'}",
           *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_model_comparison_report_of_two_models_at_two_horizons(tmp_path):
    """`python run.py -m model=xgboost,lightgbm horizon=5,20` writes model_comparison.md."""
    out = _run_rc(tmp_path, "model=xgboost,lightgbm", "horizon=5,20", "model.n_estimators=40")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sweep = tmp_path / "multirun"
    text = (sweep / "model_comparison.md").read_text()
    for part in ("| model | h5 | h20 |", "## Test Sharpe", "## Test F1 (macro)",
                 "## Best model per horizon", "### h5 (", "### h20 (", "PBO", "deflated Sharpe",
                 "model_comparison.png"):
        assert part in text, part
    import pandas as pd

    csv = pd.read_csv(sweep / "model_comparison.csv")
    assert sorted(zip(csv["model"], csv["horizon"], strict=True)) == [
        ("lightgbm", 5), ("lightgbm", 20), ("xgboost", 5), ("xgboost", 20)]
    runs = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}
    best5 = max((r for r in runs.values() if r["info"]["horizon"] == 5),
                key=lambda r: r["val"]["f1_macro"])
    assert f"| 5 | {best5['info']['model']} | {best5['val']['f1_macro']:.4f} |" in text


@pytest.mark.slow
def test_one_failed_job_keeps_the_summary_of_the_others(tmp_path):
    """`-m model=lstm,xgboost adapter=tabular`: lstm cannot take tabular input; xgboost's
    result, the summary and PBO/DSR are still written, the failure is listed with its line,
    lstm's run.log holds its error, and the multirun exits 1."""
    out = _run_rc(tmp_path, "model=lstm,xgboost", "adapter=tabular")
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    sweep = tmp_path / "multirun"
    assert (sweep / "1_xgboost" / "metrics.json").is_file()
    assert "takes 'sequence' input but the adapter produces 'tabular'" in (
        sweep / "0_lstm" / "run.log").read_text()
    assert "1 of 2 jobs failed" in log
    assert "takes 'sequence' input" in (sweep / "model_comparison.md").read_text()
    import pandas as pd

    summary = pd.read_csv(sweep / "summary.csv")
    assert dict(zip(summary["job"], summary["status"], strict=True)) == {
        "1_xgboost": "ok", "0_lstm": "failed"}
    stats = json.loads((sweep / "overfitting.json").read_text())
    assert stats["deflated_sharpe"] is None and stats["deflated_sharpe_undefined"]


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    out = _run_rc(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                  "model=xgboost,lightgbm", "model.n_estimators=30")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Joblib.Parallel(n_jobs=2" in log and "multirun summary (2 jobs" in log
    assert log.count("phase1 computed") == 1  # the Phase-1 lock: one builds, one waits
    assert (tmp_path / "multirun" / "model_comparison.md").is_file()


@pytest.mark.slow
def test_resuming_a_study_with_other_data_stops_and_names_the_keys(tmp_path):
    args = ["+sweeps=xgboost", "hydra.sweeper.n_trials=1", "model.n_estimators=30",
            f"hydra.sweeper.storage_dir={tmp_path / 'sweeps'}", "hydra.sweeper.study_name=s"]
    first = _run_rc(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    other = _run_rc(tmp_path, *args, "hydra.sweeper.n_trials=2", "data.days=22")
    assert other.returncode == 2
    assert "error: study 's'" in other.stderr and "data.days: 21 -> 22" in other.stderr
    assert "hydra.sweeper.study_name=s_" in other.stderr  # the fix: a study of this config
    import optuna

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'sweeps' / 's.db'}")
    assert len(study.trials) == 1  # nothing added


@pytest.mark.slow
def test_sweep_without_multirun_flag_is_an_error(tmp_path):
    out = _run_rc(tmp_path, "+sweeps=xgboost", multirun=False)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "sweeps need -m" in out.stderr
    assert "Traceback" not in out.stderr
