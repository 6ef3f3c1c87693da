"""Conformance of every model (every family) with the contract in ``factory/models/base.py``.

Models are discovered from ``conf/model/*.yaml`` (keys must match the constructor; a torch
model's ``trainer:`` block sizes the shared loop) at their test size: the YAML's own
``# tests:`` line, plus one generic rule for torch models (the shared loop on one thread, no
progress bar). Each is trained ONCE per session (the ``fitted`` fixture) on a tiny learnable
problem shaped for its input kind (a 2-D matrix, lazy sequence windows, lazy multi-resolution
windows or price contexts), through the training layer's ``fit_model`` (the same unpacking
into ``fit(X, y, sample_weight, eval_set)`` that runs use). On that fit: (n, 3) probabilities
in the fixed class order, learning, save/load (native files + JSON, no pickle) to the same
numbers, tamper detection, importance. Further fits check what one fit cannot: two tiny fits
with the same seed give identical probabilities (size does not matter there), a fit without
one class still gives 3 columns with that class ~0, and a fit with one class at zero weight
gives it much lower probabilities than the reference fit (sample weights reach the model).
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
from factory.training.predictor import fit_model, predict_output
from tests.conftest import CONF, yaml_test_sizes

# rules (family "rule", conf/model/ibs_rule.yaml) learn nothing and read named columns: their
# contract is checked in tests/test_ibs_rule.py
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml")
                if "factory.models.rules." not in p.read_text())
# The generic rule for every torch model: the shared loop quiet, on one thread (OpenMP
# spin-waits make tiny fits slower, not faster), up to 6 epochs of 128-sample batches at a
# higher learning rate (the tiny problem has ~8 batches an epoch).
TORCH_RULE = {"progress": False, "num_threads": 1, "patience": 2, "max_epochs": 6}
TORCH_MODEL_RULE = {"batch_size": 128, "lr": 3e-3}
N_FEATURES, SEQ_LEN, N = 8, 16, 1500
# Zero-shot foundation models: tiny random checkpoints of the real classes, built once.
FOUNDATION_WEIGHTS: dict[str, str] = {}
FOUNDATION_FAST = {"batch_size": 64, "n_paths": 128}


@pytest.fixture(scope="session", autouse=True)
def foundation_weights(tmp_path_factory):
    from tests.test_foundation import tiny_chronos_bolt, tiny_timesfm

    root = tmp_path_factory.mktemp("weights")
    FOUNDATION_WEIGHTS["chronos_bolt"] = str(tiny_chronos_bolt(root / "chronos"))
    FOUNDATION_WEIGHTS["timesfm"] = str(tiny_timesfm(root / "timesfm"))


def model_config(name: str) -> OmegaConf:
    """``{seed, trainer, model}`` for conf/model/<name>.yaml at its test size."""
    path = CONF / "model" / f"{name}.yaml"
    raw = OmegaConf.load(path)
    raw.pop("defaults", None)  # the model's default feature set / adapter
    for key, value in yaml_test_sizes(path).items():
        OmegaConf.update(raw, key, value, force_add=False)
    is_global = "model" in raw and "_target_" in raw.model
    model = raw.model if is_global else raw
    trainer = OmegaConf.load(CONF / "trainer" / "default.yaml")
    trainer = OmegaConf.merge(trainer, raw.get("trainer", {}) if is_global else {}, TORCH_RULE)
    root = OmegaConf.create({"seed": 0, "trainer": trainer, "model": model})
    if "trainer" in model:
        root.model = OmegaConf.merge(root.model, TORCH_MODEL_RULE)
    if "weights" in model:  # a zero-shot forecaster: local tiny weights, short context
        root.model = OmegaConf.merge(root.model, FOUNDATION_FAST,
                                     {"weights": FOUNDATION_WEIGHTS[name]})
    root.model.random_state = 0
    return root


def make_model(name: str, **trainer):
    root = model_config(name)
    root.trainer = OmegaConf.merge(root.trainer, trainer)
    return instantiate(root.model, _convert_="all")


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


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session", params=MODELS)
def fitted(request, problems):
    """Each model fitted once per session: (name, model, data, test probabilities)."""
    model = make_model(request.param)
    data = problems[model.input_kind]
    fit_model(model, data["train"], data["val"])
    return request.param, model, data, predict_output(model, data["test"]).proba


def test_proba_contract_and_accuracy(fitted):
    name, model, data, proba = fitted
    assert proba.shape == (len(data["test"]), 3) and proba.dtype == np.float64
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert list(model.classes_) == [-1, 0, 1]
    out = predict_output(model, data["test"])
    if model.family == "foundation":
        assert out.expected_return is not None and np.isfinite(out.expected_return).all()
        assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
        return  # zero-shot: no training, so no accuracy to ask of random tiny weights
    accuracy = (proba.argmax(axis=1) == data["test"].y).mean()
    assert accuracy > 0.55, f"{name}: held-out accuracy {accuracy:.3f} (chance is 0.33)"


def test_save_load_roundtrip_and_tamper(fitted, tmp_path):
    name, model, data, proba = fitted
    save_model(model, tmp_path, data["train"].feature_names)
    loaded, manifest = load_model(tmp_path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(predict_output(loaded, data["test"]).proba, proba, rtol=1e-6)
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
    name, model, _, _ = fitted
    imp = model.feature_importance()
    if imp is not None:
        imp = np.asarray(imp)
        assert imp.shape == (N_FEATURES,), name
        assert np.isfinite(imp).all() and (imp >= 0).all(), name


def test_same_seed_same_probabilities(fitted):
    """Two fits with the same seed agree bit for bit (size does not matter here: one epoch
    on a fifth of the rows)."""
    name, model, data, _ = fitted
    train, val = (data[s].subset(np.arange(min(n, len(data[s]))))
                  for s, n in (("train", 200), ("val", 100)))
    a, b = make_model(name, max_epochs=1), make_model(name, max_epochs=1)
    fit_model(a, train, val)
    fit_model(b, train, val)
    np.testing.assert_array_equal(predict_output(a, data["test"]).proba,
                                  predict_output(b, data["test"]).proba)


def test_missing_class_still_three_columns(fitted):
    """Class +1 absent from training: three columns still, rows summing to 1, +1 near 0."""
    name, model, data, _ = fitted
    if model.family == "foundation":
        pytest.skip("zero-shot forecaster: reads no labels (tests/test_foundation.py)")
    train, val = (data[s].subset(data[s].y != 2) for s in ("train", "val"))
    variant = make_model(name)
    fit_model(variant, train, val)
    out = predict_output(variant, data["test"]).proba
    assert out.shape == (len(data["test"]), 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    # trees and linear models give an unseen class ~0; a softmax net after a few epochs less so
    limit = 0.05 if model.family != "neural" else 0.15
    assert out[:, 2].mean() < limit, f"{name}: absent class got {out[:, 2].mean():.3f}"


def test_sample_weights_matter(fitted):
    """Class -1 at zero weight: its probability falls well below the reference fit's."""
    name, model, data, proba = fitted
    if model.family == "foundation":
        pytest.skip("zero-shot forecaster: reads no labels or weights (tests/test_foundation.py)")
    heavy = data["train"].subset(np.arange(len(data["train"])))
    heavy.weight = np.where(heavy.y == 0, 0.0, 1.0)
    weighted = make_model(name)
    fit_model(weighted, heavy, data["val"])
    out = predict_output(weighted, data["test"]).proba
    assert out[:, 0].mean() < proba[:, 0].mean() - 0.05, name


def test_forest_refuses_other_sklearn_version(problems, tmp_path):
    data = problems["tabular"]
    model = make_model("random_forest")
    fit_model(model, data["train"])
    save_model(model, tmp_path, data["train"].feature_names)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["state"]["sklearn_version"] = "0.1"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FactoryError, match="scikit-learn 0.1"):
        load_model(tmp_path)


def test_forest_proba_reproducible_across_threads(problems):
    data = problems["tabular"]
    from factory.models.classical.sklearn_trees import forest_proba

    model = make_model("random_forest")
    fit_model(model, data["train"])
    X = np.tile(data["test"].X, (12, 1))  # enough rows to be split across threads
    trees = model.model_.estimators_
    one, two = forest_proba(trees, X, 1), forest_proba(trees, X, 2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, model.model_.predict_proba(X), rtol=1e-12)


def test_every_model_yaml_is_discovered():
    assert len(MODELS) >= 22 and Path(CONF / "model" / "xgboost.yaml").is_file()
