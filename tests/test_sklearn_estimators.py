"""Every tabular model is a scikit-learn classifier: scikit-learn's own ``check_estimator``.

The models are discovered from ``conf/model/*.yaml`` (any whose class is a
:class:`~factory.models.base.TabularClassifier`), built at their test size (the YAML's
``# tests:`` line). A check that cannot apply is declared by the model class itself
(``sklearn_expected_failures``, one reason each) and passed to scikit-learn's own
``expected_failed_checks``; every other check must pass. Then the models go where users put
scikit-learn classifiers: a ``Pipeline``, ``cross_val_score``, ``CalibratedClassifierCV``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from factory.models.base import TabularClassifier
from tests.conftest import CONF, yaml_test_sizes


def _tabular_yamls() -> list[str]:
    out = []
    for path in sorted((CONF / "model").glob("*.yaml")):
        target = OmegaConf.select(OmegaConf.load(path), "_target_", default=None)
        cls = get_class(target) if target else None
        # a rule (family "rule") learns nothing: accuracy checks cannot apply; its own tests
        # are tests/test_ibs_rule.py
        if cls and issubclass(cls, TabularClassifier) and cls.family != "rule":
            out.append(path.stem)
    return out


TABULAR = _tabular_yamls()


def make(name: str):
    path = CONF / "model" / f"{name}.yaml"
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    node = OmegaConf.merge(node, yaml_test_sizes(path), {"random_state": 0})
    return instantiate(node, _convert_="all")


def test_the_six_tabular_models_are_discovered():
    assert {"xgboost", "lightgbm", "catboost", "random_forest", "logistic", "svm"} <= set(TABULAR)


@pytest.mark.parametrize("name", TABULAR)
def test_check_estimator_passes(name):
    model = make(name)
    expected = dict(type(model).sklearn_expected_failures)
    assert len(expected) <= 3 and all(len(why) > 20 for why in expected.values())
    results = check_estimator(model, expected_failed_checks=expected, on_fail=None,
                              on_skip=None)
    failed = [(r["check_name"], str(r["exception"]).splitlines()[0])
              for r in results if r["status"] == "failed"]
    assert failed == [], failed
    assert sum(r["status"] == "passed" for r in results) >= 50  # the checks really ran
    declared = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert declared == set(expected)  # every declared failure is a real one


@pytest.mark.parametrize("name", TABULAR)
def test_works_in_pipelines_cv_and_calibration(name):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = np.array([-1, 0, 1])[np.digitize(X[:, 0] + 0.3 * rng.standard_normal(300), [-0.5, 0.5])]
    model = make(name)
    with pytest.raises(NotFittedError):
        model.predict_proba(X)
    scores = cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=3)
    assert scores.mean() > 0.6
    calibrated = CalibratedClassifierCV(make(name), cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (300, 3) and list(calibrated.classes_) == [-1, 0, 1]
    fitted = make(name).fit(X, y)
    assert list(fitted.classes_) == [-1, 0, 1]
    assert set(np.unique(fitted.predict(X))) <= {-1, 0, 1}
    with pytest.raises(ValueError, match="features"):
        fitted.predict_proba(X[:, :3])
