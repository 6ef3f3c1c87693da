"""LightGBM gradient-boosted trees (native ``lgb.train`` API, multiclass objective).

A scikit-learn classifier (:class:`~factory.models.base.TabularClassifier`) over the native
API: one output per class seen in ``y``, sample weights, early stopping on the
``eval_set``'s multi-class log loss, missing values handled natively. ``deterministic`` +
``force_row_wise`` make two fits with the same seed (and thread count) give identical trees.
Saved as a LightGBM text model (``model.txt``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.models.base import TabularClassifier, predict_threads, resolve_threads


class LightGBMModel(TabularClassifier):
    family = "boosting"
    scaling = "none"
    allow_nan = True

    def __init__(
        self,
        n_estimators: int = 600,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 20,
        min_child_weight: float = 1e-3,
        subsample: float = 0.8,
        subsample_freq: int = 1,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        min_split_gain: float = 0.0,
        max_bin: int = 255,
        early_stopping_rounds: int | None = 50,
        n_jobs: int = -1,
        random_state: int = 42,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.min_split_gain = min_split_gain
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self, n_classes: int) -> dict:
        return {
            "objective": "multiclass",
            "num_class": n_classes,
            "metric": "multi_logloss",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples,
            "min_sum_hessian_in_leaf": self.min_child_weight,
            "bagging_fraction": self.subsample,
            "bagging_freq": self.subsample_freq,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "lambda_l1": self.reg_alpha,
            "min_gain_to_split": self.min_split_gain,
            "max_bin": self.max_bin,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            "seed": self.random_state,
            "num_threads": resolve_threads(self.n_jobs),
        }

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:
        import lightgbm as lgb

        params = self._params(len(self.classes_))
        dtrain = lgb.Dataset(X, label=y, weight=sample_weight,
                             params={"max_bin": self.max_bin, "verbosity": -1})
        valid_sets, callbacks = [], []
        if eval_set is not None and self.early_stopping_rounds:
            valid_sets = [lgb.Dataset(eval_set[0], label=eval_set[1], weight=eval_set[2],
                                      reference=dtrain)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        self.booster_ = lgb.train(params, dtrain, num_boost_round=self.n_estimators,
                                  valid_sets=valid_sets, callbacks=callbacks)
        best = self.booster_.best_iteration if callbacks else 0
        self.best_iteration_ = int(best) if best > 0 else self.booster_.current_iteration()

    def _predict_encoded(self, X) -> np.ndarray:
        proba = self.booster_.predict(X, num_iteration=self.best_iteration_,
                                      num_threads=predict_threads(len(X), self.n_jobs))
        return np.asarray(proba, np.float64).reshape(len(X), len(self.classes_))

    def feature_importance(self) -> np.ndarray:
        return self.booster_.feature_importance(
            importance_type="gain", iteration=self.best_iteration_).astype(np.float64)

    def native_state(self) -> dict:
        return {"best_iteration": self.best_iteration_, **self._base_state()}

    def save_native(self, path: Path) -> list[str]:
        self.booster_.save_model(str(Path(path) / "model.txt"), num_iteration=self.best_iteration_)
        return ["model.txt"]

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> LightGBMModel:
        import lightgbm as lgb

        model = cls(**params)
        model.booster_ = lgb.Booster(model_file=str(Path(path) / "model.txt"))
        model.best_iteration_ = int(state["best_iteration"])
        model._load_base_state(state)
        return model
