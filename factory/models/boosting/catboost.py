"""CatBoost gradient-boosted oblivious trees (``CatBoostClassifier``, MultiClass loss).

A scikit-learn classifier (:class:`~factory.models.base.TabularClassifier`): one output per
class seen in ``y`` (``class_names`` fixes their order), sample weights in the ``Pool``,
early stopping on the ``eval_set``'s MultiClass loss with ``use_best_model`` keeping the
best iteration; missing values handled natively. No files are written during training. Saved
in CatBoost's native binary format (``model.cbm``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.models.base import TabularClassifier, predict_threads, resolve_threads


class CatBoostModel(TabularClassifier):
    family = "boosting"
    scaling = "none"
    allow_nan = True
    # scikit-learn's check_estimator: checks that cannot apply, each with its reason
    sklearn_expected_failures = {
        "check_sample_weight_equivalence_on_dense_data":
            "Bernoulli bootstrap draws rows, so integer weights are not repeated rows",
    }

    def __init__(
        self,
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        depth: int = 6,
        l2_leaf_reg: float = 3.0,
        random_strength: float = 1.0,
        bootstrap_type: str = "Bernoulli",
        subsample: float = 0.8,
        border_count: int = 254,
        early_stopping_rounds: int | None = 50,
        n_jobs: int = -1,
        random_state: int = 42,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.random_strength = random_strength
        self.bootstrap_type = bootstrap_type
        self.subsample = subsample
        self.border_count = border_count
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self, n_classes: int) -> dict:
        params = {
            "loss_function": "MultiClass",
            "class_names": list(range(n_classes)),
            "iterations": self.n_estimators,
            "learning_rate": self.learning_rate,
            "depth": self.depth,
            "l2_leaf_reg": self.l2_leaf_reg,
            "random_strength": self.random_strength,
            "bootstrap_type": self.bootstrap_type,
            "border_count": self.border_count,
            "random_seed": self.random_state,
            "thread_count": resolve_threads(self.n_jobs),
            "allow_writing_files": False,
            "verbose": False,
        }
        if self.bootstrap_type in ("Bernoulli", "MVS", "Poisson"):
            params["subsample"] = self.subsample
        return params

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:
        from catboost import CatBoostClassifier, Pool

        self.model_ = CatBoostClassifier(**self._params(len(self.classes_)))
        dtrain = Pool(X, label=y, weight=sample_weight)
        if eval_set is not None and self.early_stopping_rounds:
            dval = Pool(eval_set[0], label=eval_set[1], weight=eval_set[2])
            self.model_.fit(dtrain, eval_set=dval, use_best_model=True,
                            early_stopping_rounds=self.early_stopping_rounds)
        else:
            self.model_.fit(dtrain)
        self.best_iteration_ = int(self.model_.tree_count_) - 1

    def _predict_encoded(self, X) -> np.ndarray:
        proba = self.model_.predict_proba(np.asarray(X),
                                          thread_count=predict_threads(len(X), self.n_jobs))
        return np.asarray(proba, np.float64).reshape(len(X), len(self.classes_))

    def feature_importance(self) -> np.ndarray:
        return np.asarray(self.model_.get_feature_importance(), np.float64)

    def native_state(self) -> dict:
        return {"best_iteration": self.best_iteration_, **self._base_state()}

    def save_native(self, path: Path) -> list[str]:
        self.model_.save_model(str(Path(path) / "model.cbm"), format="cbm")
        return ["model.cbm"]

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> CatBoostModel:
        from catboost import CatBoostClassifier

        model = cls(**params)
        model.model_ = CatBoostClassifier()
        model.model_.load_model(str(Path(path) / "model.cbm"), format="cbm")
        model.best_iteration_ = int(state["best_iteration"])
        model._load_base_state(state)
        return model
