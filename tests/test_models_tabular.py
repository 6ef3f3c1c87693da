"""Conformance of every tabular model with the contract in ``factory/models/base.py``.

Each model is built from its ``conf/model/*.yaml`` (so YAML keys must match the
constructor), with small sizes for speed, on a tiny learnable synthetic problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from factory.adapters.base import TabularInput
from factory.errors import FactoryError
from factory.models.artifacts import load_model, save_model

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
# One thread: OpenMP spin-waits make tiny fits slower, not faster, on a busy machine.
FAST = {
    "xgboost": {"n_estimators": 40, "n_jobs": 1},
    "lightgbm": {"n_estimators": 40, "n_jobs": 1},
    "catboost": {"n_estimators": 60, "n_jobs": 1},
    "random_forest": {"n_estimators": 30, "min_samples_leaf": 10, "n_jobs": 1},
    "logistic": {},
    "svm": {"n_components": 64},
}
# Every model composable from conf/model/ is checked; FAST only shrinks the known ones.
MODELS = sorted(p.stem for p in CONF.glob("*.yaml"))
N_FEATURES = 8


def make_model(name: str, **overrides):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cfg.pop("defaults", None)  # the model's default feature set: a Hydra defaults list
    cfg.random_state = 0
    return instantiate(OmegaConf.merge(cfg, FAST.get(name, {}), overrides))


def _inputs(X, y, w=None):
    names = [f"f{i}" for i in range(X.shape[1])]
    return TabularInput(X.astype(np.float32), y, np.ones(len(y)) if w is None else w, names)


@pytest.fixture(scope="module")
def data():
    """1500 rows: the class is set by f0 + f1 (plus noise); the other features are noise."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((1500, N_FEATURES))
    score = X[:, 0] + X[:, 1] + 0.5 * rng.standard_normal(1500)
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.int64)
    return {
        "train": _inputs(X[:1000], y[:1000]),
        "val": _inputs(X[1000:1250], y[1000:1250]),
        "test": _inputs(X[1250:], y[1250:]),
    }


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, data):
    return request.param, make_model(request.param).fit(data["train"], data["val"])


def test_proba_contract_and_accuracy(fitted, data):
    name, model = fitted
    proba = model.predict_proba(data["test"])
    assert proba.shape == (len(data["test"]), 3) and proba.dtype == np.float64
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(data["test"].X), proba)
    accuracy = (proba.argmax(axis=1) == data["test"].y).mean()
    assert accuracy > 0.55, f"{name}: held-out accuracy {accuracy:.3f} (chance is 0.33)"


def test_save_load_roundtrip_and_tamper(fitted, data, tmp_path):
    name, model = fitted
    save_model(model, tmp_path, data["train"].feature_names)
    loaded, manifest = load_model(tmp_path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.predict_proba(data["test"]),
                               model.predict_proba(data["test"]), rtol=1e-6)
    imp, loaded_imp = model.feature_importance(), loaded.feature_importance()
    assert (imp is None) == (loaded_imp is None)
    if imp is not None:
        np.testing.assert_allclose(loaded_imp, imp, rtol=1e-6)
    assert manifest["files"] and all(len(h) == 64 for h in manifest["files"].values())
    target = tmp_path / next(iter(manifest["files"]))
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(FactoryError, match="SHA-256"):
        load_model(tmp_path)


def test_feature_importance(fitted):
    name, model = fitted
    imp = model.feature_importance()
    if imp is not None:
        imp = np.asarray(imp)
        assert imp.shape == (N_FEATURES,), name
        assert np.isfinite(imp).all() and (imp >= 0).all(), name


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_probabilities(name, data):
    a = make_model(name).fit(data["train"], data["val"]).predict_proba(data["test"])
    b = make_model(name).fit(data["train"], data["val"]).predict_proba(data["test"])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_missing_class_still_three_columns(name, data):
    def drop2(t):
        keep = t.y != 2
        return TabularInput(t.X[keep], t.y[keep], t.weight[keep], t.feature_names)

    model = make_model(name).fit(drop2(data["train"]), drop2(data["val"]))
    proba = model.predict_proba(data["test"])
    assert proba.shape == (len(data["test"]), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert proba[:, 2].max() < 0.05, f"{name}: absent class got {proba[:, 2].max():.3f}"


@pytest.mark.parametrize("name", MODELS)
def test_sample_weights_matter(name, data):
    train, val = data["train"], data["val"]
    base = make_model(name).fit(train, val).predict_proba(data["test"])
    w = np.where(train.y == 0, 0.0, 1.0)
    heavy = TabularInput(train.X, train.y, w, train.feature_names)
    weighted = make_model(name).fit(heavy, val).predict_proba(data["test"])
    assert weighted[:, 0].mean() < base[:, 0].mean() - 0.05, name


def test_forest_refuses_other_sklearn_version(data, tmp_path):
    model = make_model("random_forest").fit(data["train"])
    save_model(model, tmp_path, data["train"].feature_names)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["state"]["sklearn_version"] = "0.1"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FactoryError, match="scikit-learn 0.1"):
        load_model(tmp_path)


def test_forest_proba_reproducible_across_threads(data):
    from factory.models.classical.sklearn_trees import forest_proba

    model = make_model("random_forest").fit(data["train"])
    X = np.tile(data["test"].X, (12, 1))  # enough rows to be split across threads
    trees = model.model_.estimators_
    one, two = forest_proba(trees, X, 1), forest_proba(trees, X, 2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, model.model_.predict_proba(X), rtol=1e-12)
