"""Multinomial logistic regression (scikit-learn ``LogisticRegression``, lbfgs, L2).

The linear baseline: fast, calibrated-ish probabilities, needs standardised inputs
(``scaling = "standard"``). Sample weights are passed to ``fit``; no early stopping. A class
absent from training is mapped into its (zero) column with
:func:`~factory.models.base.full_proba`. Saved as plain JSON (``model.json``: ``coef_``,
``intercept_``, ``classes_``) and rebuilt into a fitted ``LogisticRegression`` on load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from factory.errors import FactoryError
from factory.models.base import BaseModel, full_proba


class LogisticModel(BaseModel):
    family = "classical"
    scaling = "standard"

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 500,
        tol: float = 1e-4,
        fit_intercept: bool = True,
        random_state: int = 42,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.random_state = random_state

    def _estimator(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, solver="lbfgs", max_iter=self.max_iter, tol=self.tol,
                                  fit_intercept=self.fit_intercept, random_state=self.random_state)

    def fit(self, train, val=None) -> LogisticModel:
        if len(np.unique(train.y)) < 2:
            raise FactoryError("LogisticModel: training rows hold a single class; need >= 2")
        X = np.asarray(train.X, np.float64)  # float64 coef_: saved/loaded models then agree
        self.model_ = self._estimator().fit(X, train.y, sample_weight=train.weight)
        self.n_features_in_ = train.X.shape[1]
        return self

    def predict_proba(self, x) -> np.ndarray:
        X = x.X if hasattr(x, "X") else x
        return full_proba(self.model_.predict_proba(X), self.model_.classes_)

    def feature_importance(self) -> np.ndarray:
        return np.abs(self.model_.coef_).mean(axis=0).astype(np.float64)

    def save_native(self, path: Path) -> list[str]:
        m = self.model_
        doc = {"coef": m.coef_.tolist(), "intercept": m.intercept_.tolist(),
               "classes": [int(c) for c in m.classes_]}
        (Path(path) / "model.json").write_text(json.dumps(doc))
        return ["model.json"]

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> LogisticModel:
        model = cls(**params)
        doc = json.loads((Path(path) / "model.json").read_text())
        est = model._estimator()
        est.coef_ = np.asarray(doc["coef"], np.float64)
        est.intercept_ = np.asarray(doc["intercept"], np.float64)
        est.classes_ = np.asarray(doc["classes"], np.int64)
        est.n_features_in_ = est.coef_.shape[1]
        model.model_ = est
        model.n_features_in_ = est.n_features_in_
        return model
