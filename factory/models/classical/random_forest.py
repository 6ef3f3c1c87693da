"""Random forest (scikit-learn ``RandomForestClassifier``) on tabular features.

A bagged ensemble of deep trees: robust, few knobs, no scaling needed. It has no notion of
boosting rounds, so there is NO early stopping -- ``eval_set`` is ignored by ``fit``.
A scikit-learn classifier (:class:`~factory.models.base.TabularClassifier`); sample weights
are passed to ``fit``. Saved without pickle: all
trees' node arrays in one ``trees.npz`` (see :mod:`factory.models.classical.sklearn_trees`)
plus the forest metadata in the manifest state; loading needs the same scikit-learn
``major.minor``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.models.base import TabularClassifier
from factory.models.classical.sklearn_trees import (
    forest_proba,
    load_trees,
    save_trees,
    sklearn_version,
)


class RandomForestModel(TabularClassifier):
    family = "classical"
    scaling = "none"
    # scikit-learn's check_estimator: checks that cannot apply, each with its reason
    sklearn_expected_failures = {
        "check_sample_weight_equivalence_on_dense_data":
            "bootstrap samples draw rows, so integer weights are not repeated rows",
    }

    def __init__(
        self,
        n_estimators: int = 200,
        max_depth: int | None = None,
        min_samples_leaf: int = 50,
        max_features: str | float | int | None = "sqrt",
        max_samples: float | None = None,
        criterion: str = "gini",
        n_jobs: int = -1,
        random_state: int = 42,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_samples = max_samples
        self.criterion = criterion
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _forest(self):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            max_samples=self.max_samples, criterion=self.criterion, n_jobs=self.n_jobs,
            random_state=self.random_state,
        )

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:
        self.model_ = self._forest().fit(X, y, sample_weight=sample_weight)

    def _predict_encoded(self, X) -> np.ndarray:
        return forest_proba(self.model_.estimators_, X, self.n_jobs)

    def feature_importance(self) -> np.ndarray:
        return np.asarray(self.model_.feature_importances_, np.float64)

    def native_state(self) -> dict:
        m = self.model_
        return {
            **self._base_state(),
            "n_outputs": int(m.n_outputs_),
            "n_classes": int(m.n_classes_),
            "max_features": int(m.estimators_[0].max_features_),
            "sklearn_version": sklearn_version(),
        }

    def save_native(self, path: Path) -> list[str]:
        save_trees(self.model_.estimators_, Path(path) / "trees.npz")
        return ["trees.npz"]

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> RandomForestModel:
        model = cls(**params)
        forest = model._forest()
        forest.estimators_ = load_trees(Path(path) / "trees.npz", state)
        forest.n_estimators = len(forest.estimators_)
        forest.n_features_in_ = int(state["n_features_in"])
        forest.n_outputs_ = int(state["n_outputs"])
        forest.n_classes_ = int(state["n_classes"])
        forest.classes_ = np.arange(forest.n_classes_)
        model.model_ = forest
        model._load_base_state(state)
        return model
