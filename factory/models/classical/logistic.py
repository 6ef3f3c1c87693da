"""Multinomial logistic regression (scikit-learn ``LogisticRegression``, lbfgs, L2).

The linear baseline: fast, calibrated-ish probabilities, needs standardised inputs
(``scaling = "standard"``). A scikit-learn classifier
(:class:`~factory.models.base.TabularClassifier`); sample weights are passed to ``fit``; the
``eval_set`` is not used (no early stopping). Saved as plain JSON (``model.json``: ``coef_``,
``intercept_``) and rebuilt into a fitted ``LogisticRegression`` on load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from factory.models.base import TabularClassifier


class LogisticModel(TabularClassifier):
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

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:
        X = np.asarray(X, np.float64)  # float64 coef_: saved/loaded models then agree
        self.model_ = self._estimator().fit(X, y, sample_weight=sample_weight)
        self.n_iter_ = self.model_.n_iter_

    def _predict_encoded(self, X) -> np.ndarray:
        return self.model_.predict_proba(X)

    def feature_importance(self) -> np.ndarray:
        return np.abs(self.model_.coef_).mean(axis=0).astype(np.float64)

    def save_native(self, path: Path) -> list[str]:
        m = self.model_
        doc = {"coef": m.coef_.tolist(), "intercept": m.intercept_.tolist()}
        (Path(path) / "model.json").write_text(json.dumps(doc))
        return ["model.json"]

    def native_state(self) -> dict:
        return {**self._base_state(), "n_iter": np.asarray(self.n_iter_).tolist()}

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> LogisticModel:
        model = cls(**params)
        doc = json.loads((Path(path) / "model.json").read_text())
        est = model._estimator()
        est.coef_ = np.asarray(doc["coef"], np.float64)
        est.intercept_ = np.asarray(doc["intercept"], np.float64)
        model._load_base_state(state)
        model.n_iter_ = np.asarray(state["n_iter"])
        est.classes_ = np.arange(len(model.classes_))
        est.n_features_in_ = est.coef_.shape[1]
        model.model_ = est
        return model
