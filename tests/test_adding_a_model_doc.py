"""docs/adding_a_model.md's code examples run: the page cannot drift from the code.

The page's Python examples are written into a package of the test's own (``my_models``, on
``sys.path`` only for the test) and exercised: the tabular models fit, predict, save, are
refused on load unless their package is trusted (``trusted_modules``) and then reload to the
same probabilities (the pickle-free HistGradientBoosting one included); the network and the
combiner honour their contracts. (A user's package end to end through run.py, as a single
model and an ensemble base: tests/test_user_components.py.)
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from factory.errors import FactoryError
from factory.models.artifacts import load_model, save_model
from tests.conftest import ROOT

PAGE = ROOT / "docs" / "adding_a_model.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE.read_text(), re.S)


@pytest.fixture(scope="module")
def my_models(tmp_path_factory):
    """The page's Python examples as modules of a user package ``my_models``."""
    root = tmp_path_factory.mktemp("user")
    pkg = root / "my_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    names = {}
    for i, code in enumerate(_blocks("python")):
        cls = re.search(r"^class (\w+)\(", code, re.M)[1]
        (pkg / f"example_{i}.py").write_text(code)
        names[cls] = f"my_models.example_{i}"
    sys.path.insert(0, str(root))
    try:
        import importlib

        yield {cls: getattr(importlib.import_module(mod), cls) for cls, mod in names.items()}
    finally:
        sys.path.remove(str(root))
        for mod in [m for m in sys.modules if m == "my_models" or m.startswith("my_models.")]:
            del sys.modules[mod]


def _data(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = np.array([-1, 0, 1])[np.digitize(X[:, 0] + 0.3 * rng.standard_normal(n), [-0.4, 0.4])]
    return X, y


def test_the_page_shows_every_kind_of_component(my_models):
    assert {"ExtraTreesModel", "CNN1DNet", "GeometricMean", "HistGBModel"} <= set(my_models)


def test_tabular_examples_fit_predict_save_and_load(my_models, tmp_path):
    X, y = _data()
    small = {"ExtraTreesModel": {"n_estimators": 20, "n_jobs": 1}, "HistGBModel": {"max_iter": 20}}
    for name, size in small.items():
        model = my_models[name](random_state=0, **size)
        model.fit(X[:400], y[:400], eval_set=[(X[400:500], y[400:500])])
        proba = model.predict_proba(X[500:])
        assert list(model.classes_) == [-1, 0, 1] and proba.shape == (100, 3)
        assert (model.predict(X[500:]) == y[500:]).mean() > 0.6, name
        save_model(model, tmp_path / name, [f"f{i}" for i in range(5)])
        with pytest.raises(FactoryError, match=r"trusted_modules=\[my_models\]"):
            load_model(tmp_path / name)  # a user's class is refused unless trusted
        loaded, manifest = load_model(tmp_path / name, trusted_modules=["my_models"])
        assert manifest["class"].startswith("my_models.")
        np.testing.assert_array_equal(loaded.predict_proba(X[500:]), proba)
        assert not any(f.endswith((".pkl", ".joblib")) for f in manifest["files"])


def test_network_and_combiner_examples(my_models):
    import torch

    net = my_models["CNN1DNet"]((24, 5), 3, channels=8, kernel_size=3, dropout=0.0)
    assert net(torch.randn(4, 24, 5)).shape == (4, 3)
    with pytest.raises(FactoryError, match=r"model\.network\.channels"):
        my_models["CNN1DNet"]((24, 5), 3, channels=0)
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(3), size=(50, 2))
    comb = my_models["GeometricMean"](weights=[3, 1]).fit(P, rng.integers(0, 3, 50))
    expected = P[:, 0] ** 0.75 * P[:, 1] ** 0.25
    np.testing.assert_allclose(comb.predict_proba(P), expected / expected.sum(1, keepdims=True))
    again = type(comb).from_state(comb.state())
    np.testing.assert_array_equal(again.predict_proba(P), comb.predict_proba(P))
