"""CatBoost gradient-boosted oblivious trees (``CatBoostClassifier``, MultiClass loss).

``class_names=[0, 1, 2]`` fixes the output columns, so a class absent from a small
training set still gets its (near-zero) column. Sample weights travel in the ``Pool``;
early stopping watches the validation set's MultiClass loss and ``use_best_model`` keeps the
best iteration. No files are written during training. Saved in CatBoost's native binary
format (``model.cbm``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.models.base import N_CLASSES, BaseModel, resolve_threads


class CatBoostModel(BaseModel):
    family = "boosting"
    scaling = "none"

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

    def _params(self) -> dict:
        params = {
            "loss_function": "MultiClass",
            "class_names": list(range(N_CLASSES)),
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

    def fit(self, train, val=None) -> CatBoostModel:
        from catboost import CatBoostClassifier, Pool

        self.model_ = CatBoostClassifier(**self._params())
        dtrain = Pool(train.X, label=train.y, weight=train.weight)
        if val is not None and len(val) and self.early_stopping_rounds:
            dval = Pool(val.X, label=val.y, weight=val.weight)
            self.model_.fit(dtrain, eval_set=dval, use_best_model=True,
                            early_stopping_rounds=self.early_stopping_rounds)
        else:
            self.model_.fit(dtrain)
        self.best_iteration_ = int(self.model_.tree_count_) - 1
        self.n_features_in_ = train.X.shape[1]
        return self

    def predict_proba(self, x) -> np.ndarray:
        X = x.X if hasattr(x, "X") else x
        proba = self.model_.predict_proba(np.asarray(X))
        return np.asarray(proba, np.float64).reshape(len(X), N_CLASSES)

    def feature_importance(self) -> np.ndarray:
        return np.asarray(self.model_.get_feature_importance(), np.float64)

    def native_state(self) -> dict:
        return {"best_iteration": self.best_iteration_, "n_features_in": self.n_features_in_}

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
        model.n_features_in_ = int(state["n_features_in"])
        return model
