"""Conformance of every model (every family) with the contract in ``factory/models/base.py``.

Each model is built from its ``conf/model/*.yaml`` (so YAML keys must match the
constructor; ``${trainer}`` resolves to ``conf/trainer/default.yaml``), with small sizes for
speed, on a tiny learnable synthetic problem shaped for its input kind: a 2-D matrix, lazy
sequence windows, or lazy multi-resolution windows. It must return (n, 3) probabilities in
the fixed class order, learn, save and load (native files + JSON, no pickle) to the same
numbers, and repeat exactly under the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from factory.adapters.base import TabularInput
from factory.adapters.context import ContextInput
from factory.adapters.multires import MultiresInput
from factory.adapters.windows import SequenceInput
from factory.errors import FactoryError
from factory.models.artifacts import load_model, save_model

CONF = Path(__file__).resolve().parents[1] / "conf"
TORCH_FAST = {"max_epochs": 6, "batch_size": 128, "lr": 3e-3}
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
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
N_FEATURES, SEQ_LEN, N = 8, 16, 1500
# Zero-shot foundation models: tiny random checkpoints of the real classes, built once.
FOUNDATION_WEIGHTS: dict[str, str] = {}
FOUNDATION_FAST = {"batch_size": 64, "n_paths": 128}


@pytest.fixture(scope="module", autouse=True)
def foundation_weights(tmp_path_factory):
    from tests.test_foundation import tiny_chronos_bolt, tiny_timesfm

    root = tmp_path_factory.mktemp("weights")
    FOUNDATION_WEIGHTS["chronos_bolt"] = str(tiny_chronos_bolt(root / "chronos"))
    FOUNDATION_WEIGHTS["timesfm"] = str(tiny_timesfm(root / "timesfm"))


def make_model(name: str, **overrides):
    cfg = OmegaConf.load(CONF / "model" / f"{name}.yaml")
    cfg.pop("defaults", None)  # the model's default feature set / adapter: a defaults list
    trainer = OmegaConf.load(CONF / "trainer" / "default.yaml")
    trainer.update({"progress": False, "num_threads": 1, "patience": 2})
    root = OmegaConf.create({"seed": 0, "trainer": trainer, "model": cfg})
    fast = FAST.get(name, TORCH_FAST if "trainer" in cfg else {})
    if "weights" in cfg:  # a zero-shot forecaster: local tiny weights, short context
        fast = {**FOUNDATION_FAST, "weights": FOUNDATION_WEIGHTS[name]}
    root.model = OmegaConf.merge(root.model, fast, overrides)
    root.model.random_state = 0
    return instantiate(root.model)


def _tabular(X, y, rows):
    names = [f"f{i}" for i in range(X.shape[1])]
    return TabularInput(X[rows].astype(np.float32), y[rows], np.ones(len(rows)), names)


def _sequence(X, y, rows):
    names = [f"f{i}" for i in range(X.shape[1])]
    return SequenceInput(X.astype(np.float32), rows, SEQ_LEN, y[rows], np.ones(len(rows)),
                         rows, names)


def _multires(X, y, rows):
    """Three 'timeframes': the matrix itself and two coarser views of its first 5 columns."""
    coarse = [X[:, :5], X[::3, :5], X[::12, :5]]
    last = np.column_stack([rows, rows // 3, rows // 12])
    return MultiresInput([c.astype(np.float32) for c in coarse], last, 4, y[rows],
                         np.ones(len(rows)), rows, [f"c{i}" for i in range(5)])


def _context(X, y, rows):
    """Closes of a random walk driven by f0; barriers of 0.2% (horizon 8, the tiny heads')."""
    closes = 100.0 * np.exp(np.cumsum(0.001 * X[:, 0]))
    rows = rows[::5]  # zero-shot forecasting is slow on CPU: a fifth of the rows suffice
    n = len(rows)
    return ContextInput(closes, np.zeros(n, np.int64), rows, 64, np.full(n, 0.002),
                        np.full(n, 0.002), np.full(n, 1e-4), 8, y[rows], np.ones(n), rows,
                        ["close"])


SHAPERS = {"tabular": _tabular, "sequence": _sequence, "multires": _multires,
           "context": _context}


@pytest.fixture(scope="module")
def problems():
    """Per input kind, train/val/test inputs of one problem: the class is set by f0 + f1
    at the decision row (plus noise); other features and earlier rows are noise."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N + 12 * 4, N_FEATURES))
    score = X[:, 0] + X[:, 1] + 0.5 * rng.standard_normal(len(X))
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.int64)
    first = 12 * 4  # every window / coarse history is complete from here on
    rows = {"train": np.arange(first, first + 1000), "val": np.arange(first + 1000, first + 1250),
            "test": np.arange(first + 1250, first + N)}
    return {kind: {split: shape(X, y, r) for split, r in rows.items()}
            for kind, shape in SHAPERS.items()}


def _kind(name: str) -> str:
    return make_model(name).input_kind


@pytest.fixture(scope="module")
def data_for(problems):
    return lambda name: problems[_kind(name)]


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, data_for):
    data = data_for(request.param)
    return request.param, make_model(request.param).fit(data["train"], data["val"]), data


def test_proba_contract_and_accuracy(fitted):
    name, model, data = fitted
    proba = model.predict_proba(data["test"])
    assert proba.shape == (len(data["test"]), 3) and proba.dtype == np.float64
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    out = model.predict_output(data["test"])
    np.testing.assert_allclose(out.proba, proba)
    if model.family == "foundation":
        assert out.expected_return is not None and np.isfinite(out.expected_return).all()
        assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
        return  # zero-shot: no training, so no accuracy to ask of random tiny weights
    accuracy = (proba.argmax(axis=1) == data["test"].y).mean()
    assert accuracy > 0.55, f"{name}: held-out accuracy {accuracy:.3f} (chance is 0.33)"


def test_save_load_roundtrip_and_tamper(fitted, tmp_path):
    name, model, data = fitted
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
    name, model, _ = fitted
    imp = model.feature_importance()
    if imp is not None:
        imp = np.asarray(imp)
        assert imp.shape == (N_FEATURES,), name
        assert np.isfinite(imp).all() and (imp >= 0).all(), name


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_probabilities(name, data_for):
    data = data_for(name)
    a = make_model(name).fit(data["train"], data["val"]).predict_proba(data["test"])
    b = make_model(name).fit(data["train"], data["val"]).predict_proba(data["test"])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_missing_class_still_three_columns(name, data_for):
    data = data_for(name)
    model = make_model(name)
    if model.family == "foundation":
        pytest.skip("zero-shot forecaster: reads no labels (tests/test_foundation.py)")
    drop2 = {s: data[s].subset(data[s].y != 2) for s in ("train", "val")}
    model.fit(drop2["train"], drop2["val"])
    proba = model.predict_proba(data["test"])
    assert proba.shape == (len(data["test"]), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # trees and linear models give an unseen class ~0; a softmax net after a few epochs less so
    limit = 0.05 if model.family != "neural" else 0.15
    assert proba[:, 2].mean() < limit, f"{name}: absent class got {proba[:, 2].mean():.3f}"


@pytest.mark.parametrize("name", MODELS)
def test_sample_weights_matter(name, data_for):
    data = data_for(name)
    if make_model(name).family == "foundation":
        pytest.skip("zero-shot forecaster: reads no labels or weights (tests/test_foundation.py)")
    train, val = data["train"], data["val"]
    base = make_model(name).fit(train, val).predict_proba(data["test"])
    w = np.where(train.y == 0, 0.0, 1.0)
    heavy = train.subset(np.arange(len(train)))
    heavy.weight = w
    weighted = make_model(name).fit(heavy, val).predict_proba(data["test"])
    assert weighted[:, 0].mean() < base[:, 0].mean() - 0.05, name


def test_forest_refuses_other_sklearn_version(problems, tmp_path):
    data = problems["tabular"]
    model = make_model("random_forest").fit(data["train"])
    save_model(model, tmp_path, data["train"].feature_names)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["state"]["sklearn_version"] = "0.1"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FactoryError, match="scikit-learn 0.1"):
        load_model(tmp_path)


def test_forest_proba_reproducible_across_threads(problems):
    data = problems["tabular"]
    from factory.models.classical.sklearn_trees import forest_proba

    model = make_model("random_forest").fit(data["train"])
    X = np.tile(data["test"].X, (12, 1))  # enough rows to be split across threads
    trees = model.model_.estimators_
    one, two = forest_proba(trees, X, 1), forest_proba(trees, X, 2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, model.model_.predict_proba(X), rtol=1e-12)
