"""The leakage canary and the positive control: the whole pipeline on bars whose answer is known.

* **Canary.** On a driftless random walk (``data.signal=none``: the synthetic source's
  volatility regimes, sessions, jumps and gaps, no drift), nothing can predict the direction
  of a trade. One model of each family, run through ``factory.experiment.run``, must score at
  chance out of sample (:mod:`factory.evaluation.chance`): test accuracy within 3 standard
  errors of the test split's majority-class rate, the directional hit rate within 3 of the
  rate of independent signs, and the gross (pre-cost) Sharpe of its trades within 3 of 0
  (the k-fold run's out-of-fold predictions too). A leak anywhere (a feature, a label end
  time, the scaler, a fold, the OOF store) breaks it; ``test_the_canary_catches_a_planted_
  leak`` proves that it would.
* **Positive control.** On bars with a planted, known edge (``data.signal=planted``: a
  drift of ``edge`` one-minute vols following a daily sine of the UTC time), the best model's
  test gross Sharpe is at least half of what a rule that knows the schedule earns through
  the same backtest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.data.synthetic import SIGNALS, SyntheticSource, edge_schedule
from factory.errors import FactoryError
from factory.evaluation.chance import at_chance, chance_figures
from factory.evaluation.label_report import gross_metrics
from factory.experiment import run
from factory.features.pipeline import FeaturePipeline
from factory.phase1 import load_or_build
from tests.conftest import compose_config

THRESHOLD = 0.45  # conf/evaluation/default.yaml
TABULAR_BASES = ("ensemble.base_overrides={xgboost:['features=core','model.n_estimators=40',"
                 "'model.n_jobs=1'],logistic:['features=core']}")
FOLDS = ["cv=purged_kfold", "cv.n_splits=3"]
TORCH = ["trainer.num_threads=1", "trainer.progress=false"]  # 1 thread: ~3x faster on a busy box
FAMILIES = {
    "booster": ["model=xgboost", "model.n_estimators=60", "model.n_jobs=1"],
    "logistic": ["model=logistic"],
    "recurrent": ["model=gru", "trainer.max_epochs=2", "model.batch_size=512",
                  "model.network.hidden_size=16", "adapter.seq_len=16", *TORCH],
    "neuralforecast": ["model=nlinear", "trainer.max_epochs=2", "model.batch_size=512",
                       "model.network.hidden=16", "adapter.seq_len=16", *TORCH],
    "stacking": ["ensemble=stacking", "ensemble.base_models=[xgboost,logistic]", TABULAR_BASES,
                 *FOLDS],
    "kfold": ["model=xgboost", "model.n_estimators=40", "model.n_jobs=1", *FOLDS],
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One cache for the module: every family shares the canary's Phase-1 dataset."""
    return tmp_path_factory.mktemp("canary")


def _run(root: Path, name: str, *overrides: str):
    cfg = compose_config(root, *overrides, f"paths.output_dir={root / name}", "features=core")
    run(cfg)
    return cfg, load_or_build(cfg)[0], root / name


def assert_at_chance(fig: dict, what: str) -> None:
    assert all(at_chance(fig).values()), (what, at_chance(fig), fig)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_canary_every_family_scores_at_chance_on_a_random_walk(root, family):
    cfg, ds, out = _run(root, family, "data.signal=none", *FAMILIES[family])
    pred = pd.read_parquet(out / "predictions" / "test.parquet")
    fig = chance_figures(pred, ds, THRESHOLD)
    assert fig["n"] > 1000 and fig["n_directional"] > 300 and fig["gross_sharpe_se"] > 0
    assert_at_chance(fig, family)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == pytest.approx(fig["accuracy"])
    if family == "kfold":  # the out-of-fold predictions of train + val are at chance too
        oof = pd.read_parquet(out / "predictions" / "oof.parquet")
        assert_at_chance(chance_figures(oof, ds, THRESHOLD), "kfold oof")


def _leak(monkeypatch, horizon: int) -> None:
    """A feature that reads the future: the sign of the next ``horizon`` bars' move, added
    where Phase 1 (and ``transform``) write the features: ``FeaturePipeline.fill``."""
    fill = FeaturePipeline.fill

    def leaky(self, matrix, bars, base=None, fine=None, start=0, timings=None):
        nan, finite = fill(self, matrix, bars, base, fine, start, timings)
        future = bars["close"].shift(-horizon) / bars["open"].shift(-1) - 1.0
        nan["leak"] = matrix.put("leak", np.sign(future.fillna(0.0).to_numpy()), start, finite)
        return nan, finite

    monkeypatch.setattr(FeaturePipeline, "fill", leaky)


def test_the_canary_catches_a_planted_leak(monkeypatch, tmp_path):
    _leak(monkeypatch, 20)
    _, ds, out = _run(tmp_path, "leak", "data.signal=none", *FAMILIES["booster"])
    fig = chance_figures(pd.read_parquet(out / "predictions" / "test.parquet"), ds, THRESHOLD)
    assert fig["accuracy"] > fig["majority"] + 3 * fig["accuracy_se"]
    assert fig["directional"] > fig["directional_expected"] + 3 * fig["directional_se"]
    assert fig["gross_sharpe"] > 3 * fig["gross_sharpe_se"]


def planted_rule(pred: pd.DataFrame, ds, min_drift: float = 0.5) -> pd.DataFrame:
    """``pred`` with the decisions of a rule that knows the planted schedule: the sign of
    the schedule's mean over the minutes of bars t+1 .. t+horizon, when it is at least
    ``min_drift`` (the schedule has unit mean square), else flat."""
    out = pred.copy()
    side = np.zeros(len(pred))
    for sym, rows in pred.groupby("symbol").indices.items():
        index = ds.bars[sym].index
        minute = (index.hour * 60 + index.minute).to_numpy()
        per_bar = sum(edge_schedule(minute + k) for k in range(5)) / 5.0  # 5-minute bars
        csum = np.concatenate([[0.0], np.cumsum(per_bar)])
        t = pred["bar_idx"].to_numpy()[rows]
        mean = (csum[t + ds.horizon + 1] - csum[t + 1]) / ds.horizon
        side[rows] = np.where(mean >= min_drift, 1, np.where(mean <= -min_drift, -1, 0))
    out[["p_short", "p_flat", "p_long"]] = np.eye(3)[(side + 1).astype(int)]
    return out


def test_positive_control_recovers_the_planted_edge(tmp_path):
    sharpe = {}
    for family in ("booster", "logistic"):
        _, ds, out = _run(tmp_path, family, "data.signal=planted", *FAMILIES[family])
        pred = pd.read_parquet(out / "predictions" / "test.parquet")
        sharpe[family] = gross_metrics(pred, ds, THRESHOLD)["gross_sharpe"]
    rule = gross_metrics(planted_rule(pred, ds), ds, THRESHOLD)
    assert rule["gross_sharpe"] > 3 * rule["gross_sharpe_se"]  # the edge is there to find
    assert max(sharpe.values()) >= 0.5 * rule["gross_sharpe"], (sharpe, rule)


def test_synthetic_signal_options_keep_every_draw_but_the_drift():
    np.testing.assert_allclose(edge_schedule(np.array([0, 360, 720, 1080, 1440 + 360])),
                               [0.0, np.sqrt(2), 0.0, -np.sqrt(2), np.sqrt(2)], atol=1e-12)
    kw = {"days": 3, "seed": 5, "timeframe": "1min"}
    runs = {s: SyntheticSource(signal=s, **kw).load().bars["MES"] for s in SIGNALS}
    for s in ("none", "planted"):  # same regimes, noise, volume and gaps; another drift
        pd.testing.assert_index_equal(runs[s].index, runs["momentum"].index)
        np.testing.assert_array_equal(runs[s]["volume"], runs["momentum"]["volume"])
        assert not np.array_equal(runs[s]["close"], runs["momentum"]["close"])
    with pytest.raises(FactoryError, match=r"`data.signal` must be one of momentum, none"):
        SyntheticSource(signal="trend")
