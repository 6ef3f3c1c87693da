"""XGBoost gradient-boosted trees (native ``xgb.train`` API, multi:softprob).

A scikit-learn classifier (:class:`~factory.models.base.TabularClassifier`) over the native
API: one softprob output per class seen in ``y``, sample weights, early stopping on the
``eval_set``'s multi-class log loss, missing values handled natively. Saved as XGBoost
UBJSON (``model.ubj``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.models.base import TabularClassifier, predict_threads, resolve_threads


class XGBoostModel(TabularClassifier):
    family = "boosting"
    scaling = "none"
    allow_nan = True
    # scikit-learn's check_estimator: checks that cannot apply, each with its reason
    sklearn_expected_failures = {
        "check_sample_weight_equivalence_on_dense_data":
            "row subsampling (subsample=0.8) draws rows, so integer weights are not repeated rows",
    }

    def __init__(
        self,
        n_estimators: int = 400,
        learning_rate: float = 0.1,
        max_depth: int = 5,
        min_child_weight: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        gamma: float = 0.0,
        max_bin: int = 256,
        early_stopping_rounds: int | None = 30,
        n_jobs: int = -1,
        random_state: int = 42,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.gamma = gamma
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self, n_classes: int) -> dict:
        return {
            "objective": "multi:softprob",
            "num_class": n_classes,
            "eval_metric": "mlogloss",
            "tree_method": "hist",
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "alpha": self.reg_alpha,
            "gamma": self.gamma,
            "max_bin": self.max_bin,
            "nthread": resolve_threads(self.n_jobs),
            "seed": self.random_state,
        }

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:
        import xgboost as xgb

        dtrain = xgb.DMatrix(X, label=y, weight=sample_weight)
        evals, stop = [], None
        if eval_set is not None and self.early_stopping_rounds:
            evals = [(xgb.DMatrix(eval_set[0], label=eval_set[1], weight=eval_set[2]), "val")]
            stop = self.early_stopping_rounds
        self.booster_ = xgb.train(
            self._params(len(self.classes_)), dtrain, num_boost_round=self.n_estimators,
            evals=evals, early_stopping_rounds=stop, verbose_eval=False,
        )
        self.best_iteration_ = (
            int(self.booster_.best_iteration) if stop else self.booster_.num_boosted_rounds() - 1
        )

    def _predict_encoded(self, X) -> np.ndarray:
        # in-place prediction (no DMatrix copy); one thread for a few rows (a live bar)
        self.booster_.set_param({"nthread": predict_threads(len(X), self.n_jobs)})
        proba = self.booster_.inplace_predict(X, iteration_range=(0, self.best_iteration_ + 1))
        return np.asarray(proba, np.float64).reshape(len(X), len(self.classes_))

    def feature_importance(self) -> np.ndarray:
        gain = self.booster_.get_score(importance_type="total_gain")
        out = np.zeros(self.n_features_in_)
        for key, value in gain.items():
            out[int(key.lstrip("f"))] = value
        return out

    def native_state(self) -> dict:
        return {"best_iteration": self.best_iteration_, **self._base_state()}

    def save_native(self, path: Path) -> list[str]:
        self.booster_.save_model(Path(path) / "model.ubj")
        return ["model.ubj"]

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> XGBoostModel:
        import xgboost as xgb

        model = cls(**params)
        model.booster_ = xgb.Booster()
        model.booster_.load_model(Path(path) / "model.ubj")
        model.best_iteration_ = int(state["best_iteration"])
        model._load_base_state(state)
        return model
