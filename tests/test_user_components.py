"""A user's own model, in their own package and their own config directory, end to end.

The package lives outside the project (on PYTHONPATH), its YAML in a directory added with
``hydra.searchpath``: it trains as a single model and as an ensemble base (names resolved by
Hydra's own config loading), its artifacts save and reload when the config trusts its
package, and loading refuses it (saying how to trust it) when it does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from factory.ensemble.predictor import EnsemblePredictor
from factory.errors import FactoryError
from factory.experiment import run
from factory.training.predictor import ModelPredictor
from tests.conftest import ROOT, TINY

MODEL = '''
"""Nearest centroid with a softmax over negative squared distances: a user's own model."""
import json
from pathlib import Path

import numpy as np

from factory.models.base import TabularClassifier


class Centroids(TabularClassifier):
    family = "classical"
    scaling = "standard"

    def __init__(self, temperature: float = 1.0, random_state: int = 0) -> None:
        self.temperature = temperature
        self.random_state = random_state

    def _fit_encoded(self, X, y, sample_weight, eval_set):
        w = np.ones(len(y)) if sample_weight is None else sample_weight
        self.centroids_ = np.stack([np.average(X[y == k], axis=0, weights=w[y == k])
                                    for k in range(len(self.classes_))])

    def _predict_encoded(self, X):
        d = ((np.asarray(X, float)[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        z = -d / (self.temperature * X.shape[1])
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def native_state(self):
        return self._base_state()

    def save_native(self, path):
        (Path(path) / "centroids.json").write_text(json.dumps(self.centroids_.tolist()))
        return ["centroids.json"]

    @classmethod
    def load_native(cls, path, params, state):
        model = cls(**params)
        model._load_base_state(state)
        model.centroids_ = np.asarray(json.loads((Path(path) / "centroids.json").read_text()))
        return model
'''

YAML = '''
# My nearest-centroid model (my_models.centroids.Centroids).
defaults:
  - override /features@_global_.features: core
_target_: my_models.centroids.Centroids
temperature: 2.0
random_state: ${seed}
'''


@pytest.fixture(scope="module")
def user_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    (root / "pkg" / "my_models").mkdir(parents=True)
    (root / "pkg" / "my_models" / "__init__.py").write_text("")
    (root / "pkg" / "my_models" / "centroids.py").write_text(textwrap.dedent(MODEL))
    (root / "conf" / "model").mkdir(parents=True)
    (root / "conf" / "model" / "my_centroid.yaml").write_text(textwrap.dedent(YAML))
    env = {**os.environ, "PYTHONPATH": f"{root / 'pkg'}{os.pathsep}{ROOT}",
           "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "run.py", *TINY, f"paths.cache_dir={root / 'cache'}",
           f"hydra.searchpath=[file://{root / 'conf'}]", "trusted_modules=[my_models]",
           "model=my_centroid", f"hydra.run.dir={root / 'single'}"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sys.path.insert(0, str(root / "pkg"))
    yield root
    sys.path.remove(str(root / "pkg"))


def test_user_model_trains_end_to_end_from_the_command_line(user_project):
    single = json.loads((user_project / "single" / "metrics.json").read_text())
    assert single["info"]["model"] == "my_centroid" and single["info"]["family"] == "classical"
    assert 0.2 < single["test"]["accuracy"] < 1.0


def test_user_model_yaml_on_the_search_path_is_an_ensemble_base(user_project, make_cfg,
                                                                tmp_path):
    cfg = make_cfg(f"hydra.searchpath=[file://{user_project / 'conf'}]",
                   "trusted_modules=[my_models]", "ensemble=voting",
                   "ensemble.base_models=[logistic,my_centroid]", "ensemble.oof_cv.n_splits=3",
                   "ensemble.base_overrides={logistic:['features=core']}")
    assert cfg.ensemble.bases.my_centroid.model._target_ == "my_models.centroids.Centroids"
    run(cfg)
    vote = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert vote["ensemble"]["base_models"] == ["logistic", "my_centroid"]
    assert set(vote["ensemble"]["combiner"]["weights"]) == {"logistic", "my_centroid"}
    with pytest.raises(FactoryError, match="trusted_modules"):
        EnsemblePredictor.load(tmp_path / "run" / "bundle" / "predictor")
    ensemble = EnsemblePredictor.load(tmp_path / "run" / "bundle" / "predictor", trusted_modules=["my_models"])
    assert list(ensemble.bases_) == ["logistic", "my_centroid"]


def test_user_artifacts_reload_only_when_trusted(user_project):
    root = user_project
    from factory.phase1 import load_or_build
    from tests.conftest import compose_config

    model_dir = root / "single" / "bundle" / "predictor"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["class"] == "my_models.centroids.Centroids"
    with pytest.raises(FactoryError, match=r"trusted_modules=\[my_models\]"):
        ModelPredictor.load(model_dir)
    loaded = ModelPredictor.load(model_dir, trusted_modules=["my_models"])
    cfg = compose_config(root / "again", "model=logistic", "features=core",
                         f"paths.cache_dir={root / 'cache'}")
    ds = load_or_build(cfg)[0]
    frame = loaded.predict(ds, ds.rows("test"))
    import pandas as pd

    saved = pd.read_parquet(root / "single" / "predictions" / "test.parquet")
    np.testing.assert_array_equal(frame[["p_short", "p_flat", "p_long"]].to_numpy(),
                                  saved[["p_short", "p_flat", "p_long"]].to_numpy())
