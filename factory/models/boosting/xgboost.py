"""XGBoost gradient-boosted trees (native ``xgb.train`` API, multi:softprob).

The native API keeps all three classes even when one is absent from a small training set,
takes sample weights, and early-stops on the validation set's multi-class log loss.
Saved as XGBoost UBJSON (``model.ubj``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.models.base import N_CLASSES, BaseModel, resolve_threads


class XGBoostModel(BaseModel):
    family = "boosting"
    scaling = "none"

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

    def _params(self) -> dict:
        return {
            "objective": "multi:softprob",
            "num_class": N_CLASSES,
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

    def fit(self, train, val=None) -> XGBoostModel:
        import xgboost as xgb

        dtrain = xgb.DMatrix(train.X, label=train.y, weight=train.weight)
        evals, stop = [], None
        if val is not None and len(val) and self.early_stopping_rounds:
            evals = [(xgb.DMatrix(val.X, label=val.y, weight=val.weight), "val")]
            stop = self.early_stopping_rounds
        self.booster_ = xgb.train(
            self._params(), dtrain, num_boost_round=self.n_estimators, evals=evals,
            early_stopping_rounds=stop, verbose_eval=False,
        )
        self.best_iteration_ = (
            int(self.booster_.best_iteration) if stop else self.booster_.num_boosted_rounds() - 1
        )
        self.n_features_in_ = train.X.shape[1]
        return self

    def predict_proba(self, x) -> np.ndarray:
        import xgboost as xgb

        X = x.X if hasattr(x, "X") else x
        proba = self.booster_.predict(
            xgb.DMatrix(X), iteration_range=(0, self.best_iteration_ + 1)
        )
        return proba.reshape(len(X), N_CLASSES).astype(np.float64)

    def feature_importance(self) -> np.ndarray:
        gain = self.booster_.get_score(importance_type="total_gain")
        out = np.zeros(self.n_features_in_)
        for key, value in gain.items():
            out[int(key.lstrip("f"))] = value
        return out

    def native_state(self) -> dict:
        return {"best_iteration": self.best_iteration_, "n_features_in": self.n_features_in_}

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
        model.n_features_in_ = int(state["n_features_in"])
        return model
