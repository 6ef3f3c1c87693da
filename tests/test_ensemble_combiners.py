"""Ensemble combiners on synthetic out-of-fold probabilities with a known answer.

The data: model A is accurate in regime 0 and noise in regime 1, model B the reverse, model C
weakly informative everywhere. The noise has the same distribution as the accurate output
(confident, but about a random class), so nothing in P alone says which model to trust: a
combiner that reads the regime should switch between A and B; one that cannot, even a
flexible one, should do clearly worse.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from factory.config import build
from factory.ensemble.common import log_loss, stack_features
from factory.ensemble.diversity import ablation, disagreement, prediction_correlation
from factory.ensemble.meta_learners import CalibratedBlender, LogisticMeta
from factory.ensemble.regime import RegimeAwareMeta
from factory.ensemble.voting import HardVoting, SoftVoting
from factory.errors import FactoryError
from tests.conftest import CONF, yaml_test_sizes

NAMES = ["A", "B", "C"]
N = 2000  # rows per half (fit / evaluate)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    regime = rng.integers(0, 2, n)
    onehot = np.eye(3)[y]

    def good() -> np.ndarray:
        return 0.6 * onehot + 0.4 * rng.dirichlet(np.ones(3), n)

    def noise() -> np.ndarray:  # looks exactly like good() but points at a random class
        return 0.6 * np.eye(3)[rng.integers(0, 3, n)] + 0.4 * rng.dirichlet(np.ones(3), n)

    A = np.where(regime[:, None] == 0, good(), noise())
    B = np.where(regime[:, None] == 1, good(), noise())
    C = 0.15 * onehot + 0.85 * rng.dirichlet(np.full(3, 2.0), n)
    R = pd.DataFrame({"vol_regime_20_500": np.where(regime == 0, -1.0, 1.0),
                      "hmm_p0": np.clip(0.7 - 0.4 * regime + 0.2 * rng.standard_normal(n), 0, 1)})
    return np.stack([A, B, C], axis=1), y, R


@pytest.fixture(scope="module")
def data():
    P, y, R = make_data(2 * N, seed=7)
    w = np.random.default_rng(1).uniform(0.2, 1.0, 2 * N)
    return {"P": P[:N], "y": y[:N], "R": R.iloc[:N], "w": w[:N],
            "P_test": P[N:], "y_test": y[N:], "R_test": R.iloc[N:].reset_index(drop=True)}


# Every combiner is discovered from conf/ensemble/combiner/ (one YAML each): no list here.
COMBINERS = sorted(p.stem for p in (CONF / "ensemble" / "combiner").glob("*.yaml"))
LEARNERS = [n for n in COMBINERS if not n.endswith("_voting")]


def learner(name: str, **params):
    """A fresh combiner from its YAML (a `_partial_` node) at its test size (the YAML's
    ``# tests:`` line), with ``params`` overriding."""
    path = CONF / "ensemble" / "combiner" / f"{name}.yaml"
    root = OmegaConf.create({"seed": 42, "c": OmegaConf.load(path)})
    root.c = OmegaConf.merge(root.c, yaml_test_sizes(path), params)
    return instantiate(root.c, _convert_="all")()


def all_combiners() -> dict:
    out = {name: learner(name) for name in COMBINERS}
    out["calibrated_platt"] = learner("calibrated", method="platt")
    out["regime_aware_iso"] = RegimeAwareMeta(calibration="isotonic")
    out.update(soft_learned=SoftVoting(weights="learned"),
               soft_fixed=SoftVoting(weights=[2, 1, 1]),
               hard_learned=HardVoting(weights="learned"))
    return out


@pytest.fixture(scope="module")
def fitted(data):
    return {name: c.fit(data["P"], data["y"], sample_weight=data["w"], R=data["R"])
            for name, c in all_combiners().items()}


def test_every_combiner_returns_normalised_probabilities(data, fitted):
    for name, comb in fitted.items():
        proba = comb.predict_proba(data["P_test"], R=data["R_test"])
        assert proba.shape == (N, 3), name
        assert proba.min() >= 0, name
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12, err_msg=name)
        weights = comb.model_weights()
        assert weights.shape == (3,) and weights.min() >= 0, name
        assert abs(weights.sum() - 1) < 1e-9, name
        assert set(comb.describe(NAMES)["weights"]) == set(NAMES), name


def test_state_round_trip_predicts_identically(data, fitted):
    for name, comb in fitted.items():
        doc = json.loads(json.dumps(comb.state()))  # must be plain JSON
        again = type(comb).from_state(doc)
        assert type(again) is type(comb), name
        a = comb.predict_proba(data["P_test"], R=data["R_test"])
        b = again.predict_proba(data["P_test"], R=data["R_test"])
        assert np.array_equal(a, b), name
        assert again.describe(NAMES) == comb.describe(NAMES), name


def test_regime_aware_beats_logistic_and_shows_the_switch(data, fitted):
    scores = {name: log_loss(data["y_test"], fitted[name].predict_proba(data["P_test"],
                                                                        R=data["R_test"]))
              for name in ("regime_aware", "logistic", "soft_learned", "gradient_boosting")}
    for other in ("logistic", "soft_learned", "gradient_boosting"):
        assert scores["regime_aware"] < scores[other] - 0.05, scores
    by = fitted["regime_aware"].describe(NAMES)["by_regime"]["vol_regime_20_500"]
    assert by["-1"]["A"] > 0.8 and by["-1"]["B"] < 0.1, by
    assert by["1"]["B"] > 0.8 and by["1"]["A"] < 0.1, by
    assert 0.45 < by["-1"]["share"] < 0.55
    gates = fitted["regime_aware"].gate_weights(data["R_test"])
    regime0 = data["R_test"]["vol_regime_20_500"].to_numpy() == -1
    assert gates[regime0, 0].mean() > 0.8 and gates[~regime0, 1].mean() > 0.8


def test_learned_voting_weights_favour_the_better_model():
    P, y, _ = make_data(3000, seed=3)
    P[:, 1] = 0.5 * P[:, 1] + 0.5 * P[:, 2]  # B: half noise, half the weak C: worse than A
    A_good = np.eye(3)[y] * 0.5 + 0.5 * np.random.default_rng(0).dirichlet(np.ones(3), 3000)
    P[:, 0] = A_good  # A accurate everywhere
    for comb in (SoftVoting(weights="learned"), HardVoting(weights="learned"),
                 CalibratedBlender()):
        w = comb.fit(P, y).model_weights()
        assert w[0] > 0.8 and w[0] == w.max(), (type(comb).__name__, w)


def test_hard_voting_hand_example():
    P = np.array([
        [[0.1, 0.2, 0.7], [0.2, 0.3, 0.5], [0.6, 0.2, 0.2]],  # votes long, long, short
        [[0.5, 0.2, 0.3], [0.3, 0.4, 0.3], [0.2, 0.3, 0.5]],  # one vote each: a tie
    ])
    y = np.array([2, 0])
    hv = HardVoting(smoothing=0.0).fit(P, y)
    np.testing.assert_allclose(hv.predict_proba(P), [[1 / 3, 0, 2 / 3], [1 / 3, 1 / 3, 1 / 3]],
                               rtol=0, atol=1e-15)
    # the tie goes to the highest mean probability: short 1.0/3, flat 0.9/3, long 1.1/3
    assert hv.predict(P).tolist() == [2, 2]
    smoothed = HardVoting(smoothing=0.01).fit(P, y).predict_proba(P)
    np.testing.assert_allclose(smoothed[1], 0.99 / 3 + 0.01 * np.array([1.0, 0.9, 1.1]) / 3,
                               atol=1e-15)
    assert smoothed.argmax(axis=1).tolist() == [2, 2]
    weighted = HardVoting(weights=[1, 2, 1], smoothing=0.0).fit(P, y)
    np.testing.assert_allclose(weighted.predict_proba(P), [[0.25, 0, 0.75], [0.25, 0.5, 0.25]],
                               atol=1e-15)
    assert weighted.predict(P).tolist() == [2, 1]


def test_soft_voting_is_the_weighted_mean(data):
    sv = SoftVoting(weights=[3, 1, 0]).fit(data["P"], data["y"])
    expected = 0.75 * data["P_test"][:, 0] + 0.25 * data["P_test"][:, 1]
    np.testing.assert_allclose(sv.predict_proba(data["P_test"]), expected, atol=1e-15)


def test_ablation_one_delta_per_model(data):
    out = ablation(lambda: SoftVoting(weights="learned"), data["P"], data["y"], NAMES,
                   P_eval=data["P_test"], y_eval=data["y_test"])
    assert set(out["delta"]) == set(NAMES) and out["metric"] == "log_loss"
    assert out["delta"]["A"] > 0.05 and out["delta"]["B"] > 0.05  # each carries half the rows
    assert abs(out["delta"]["C"]) < out["delta"]["A"] / 5
    for k in NAMES:
        assert out["delta"][k] == pytest.approx(out["without"][k] - out["full"])
    fixed = ablation(lambda: SoftVoting(weights=[1, 1, 2]), data["P"], data["y"], NAMES)
    assert len(fixed["delta"]) == 3  # fixed weights are dropped along with their model


def test_seeded_learners_are_deterministic(data, fitted):
    rows = slice(0, 1000)
    args = (data["P"][rows], data["y"][rows])
    for name in ("mlp", "gradient_boosting"):
        a = learner(name, random_state=0).fit(*args).predict_proba(data["P_test"])
        b = learner(name, random_state=0).fit(*args).predict_proba(data["P_test"])
        assert np.array_equal(a, b), name
    c = learner("mlp", random_state=1).fit(*args).predict_proba(data["P_test"])
    assert not np.array_equal(a, c)  # the seed matters: the test above is not vacuous
    again = RegimeAwareMeta().fit(data["P"], data["y"], sample_weight=data["w"], R=data["R"])
    assert np.array_equal(again.predict_proba(data["P_test"], R=data["R_test"]),
                          fitted["regime_aware"].predict_proba(data["P_test"], R=data["R_test"]))


def test_own_predictions_match_sklearn(data):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    F, F_test = stack_features(data["P"], True), stack_features(data["P_test"], True)
    lr = LogisticRegression(C=0.5, max_iter=1000, tol=1e-6).fit(F, data["y"])
    ours = LogisticMeta(C=0.5).fit(data["P"], data["y"]).predict_proba(data["P_test"])
    np.testing.assert_allclose(ours, lr.predict_proba(F_test), atol=1e-12)
    hgb = HistGradientBoostingClassifier(max_iter=30, learning_rate=0.05, max_leaf_nodes=8,
                                         min_samples_leaf=40, max_bins=32, l2_regularization=1.0,
                                         early_stopping=False, random_state=42)
    with threadpool_limits(limits=1, user_api="openmp"):
        hgb.fit(F, data["y"])
    ours = learner("gradient_boosting").fit(data["P"], data["y"]).predict_proba(data["P_test"])
    np.testing.assert_allclose(ours, hgb.predict_proba(F_test), atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # small max_iter
def test_two_class_training_rows_still_give_three_columns(data):
    keep = data["y"] != 1
    P, y = data["P"][keep], data["y"][keep]
    for name in LEARNERS:
        comb = learner(name).fit(P, y, R=data["R"][keep])
        proba = comb.predict_proba(data["P_test"], R=data["R_test"])
        assert proba.shape == (N, 3), name
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12, err_msg=name)


def test_diversity_matrices():
    P = np.array([[[0.2, 0.2, 0.6], [0.1, 0.3, 0.6], [0.6, 0.2, 0.2]],
                  [[0.5, 0.3, 0.2], [0.3, 0.5, 0.2], [0.2, 0.3, 0.5]],
                  [[0.3, 0.4, 0.3], [0.2, 0.6, 0.2], [0.3, 0.4, 0.3]]])
    corr = prediction_correlation(P, NAMES)
    # p_long - p_short per row: A (0.4, -0.3, 0), B (0.5, -0.1, 0), C (-0.4, 0.3, 0) = -A
    assert corr.loc["A", "B"] == pytest.approx(np.corrcoef([0.4, -0.3, 0], [0.5, -0.1, 0])[0, 1])
    assert corr.loc["A", "B"] == pytest.approx(0.95963, abs=1e-5)
    assert corr.loc["A", "C"] == pytest.approx(-1.0)
    assert (np.diag(corr) == 1).all()
    dis = disagreement(P, NAMES)  # argmax: A (long, short, flat), B (long, flat, flat), C (short,
    assert dis.loc["A", "B"] == pytest.approx(1 / 3)  # long, flat)
    assert dis.loc["A", "C"] == pytest.approx(2 / 3) and dis.loc["B", "C"] == pytest.approx(2 / 3)
    assert (np.diag(dis) == 0).all()


def test_inputs_and_config_are_validated(data):
    comb = LogisticMeta().fit(data["P"], data["y"])
    with pytest.raises(FactoryError, match="fitted on 3 base models"):
        comb.predict_proba(data["P_test"][:, :2])
    with pytest.raises(FactoryError, match="needs regime features"):
        RegimeAwareMeta().fit(data["P"], data["y"])
    with pytest.raises(FactoryError, match="sum to 1"):
        LogisticMeta().fit(data["P"] * 0.5, data["y"])
    with pytest.raises(FactoryError, match="ensemble.combiner.weights"):
        SoftVoting(weights=[1, 1]).fit(data["P"], data["y"])


def test_ensemble_config_is_validated_before_any_work(make_cfg):
    with pytest.raises(FactoryError, match=r"`ensemble.combiner.c` is not a parameter of "
                                           r"LogisticMeta; valid: C, use_log_odds, max_iter"):
        build(make_cfg("ensemble=stacking", "+ensemble.combiner.c=1.0").ensemble)
    with pytest.raises(FactoryError, match="blend_fraction"):
        build(make_cfg("ensemble=blending", "ensemble.blend_fraction=1.5").ensemble)
    with pytest.raises(FactoryError, match=">= 2 distinct"):
        build(make_cfg("ensemble=voting", "ensemble.base_models=[xgboost]").ensemble)
    with pytest.raises(FactoryError, match=r"ensemble.combiner.weights` must hold 3"):
        build(make_cfg("ensemble=voting", "ensemble.combiner.weights=[1,2]").ensemble)
    with pytest.raises(FactoryError, match=r"no model config named \['xgb'\]; valid: .*xgboost"):
        make_cfg("ensemble=stacking", "ensemble.base_models=[xgb,logistic]")
    with pytest.raises(FactoryError, match=r"base_overrides` names \['svm'\]"):
        make_cfg("ensemble=stacking", "ensemble.base_overrides={svm:['model.C=2']}")


def test_config_builds_the_regime_aware_stack(make_cfg):
    cfg = make_cfg("ensemble=stacking", "ensemble/combiner=regime_aware",
                   "ensemble.base_models=[xgboost,lightgbm,logistic]", "ensemble.combiner.l2=0.5")
    ens = build(cfg.ensemble)
    assert ens.base_models == ["xgboost", "lightgbm", "logistic"] and ens.needs_regimes
    assert sorted(ens.bases) == sorted(ens.base_models)  # composed before the run
    assert ens.bases["lightgbm"]["model"]["_target_"].endswith("LightGBMModel")
    assert ens.bases["lightgbm"]["features"]["name"] == "boosting_optimal"  # its own default
    comb = ens.make_combiner()
    assert isinstance(comb, RegimeAwareMeta) and comb.l2 == 0.5
    X = pd.DataFrame(np.zeros((2, 5)), columns=["ret_1", "hmm_p1", "trend_regime_50",
                                                "hmm_p0", "hmm_state"])

    class Data:
        pass

    ds = Data()
    ds.X = X
    assert list(ens.regimes(ds, np.arange(2)).columns) == ["trend_regime_50", "hmm_p1", "hmm_p0"]
    ds.X = X[["ret_1"]]
    with pytest.raises(FactoryError, match="match no dataset column"):
        ens.regimes(ds, np.arange(2))
    blend = build(make_cfg("ensemble=blending", "ensemble/combiner=mlp").ensemble)
    assert blend.blend_fraction == 0.2 and blend.make_combiner().random_state == 42
    assert blend.regimes(ds, np.arange(2)) is None
    vote = build(make_cfg("ensemble=voting", "ensemble/combiner=hard_voting").ensemble)
    assert isinstance(vote.make_combiner(), HardVoting) and vote.method == "voting"
