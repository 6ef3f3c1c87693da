"""Tabular adapter: the 2-D feature matrix, scaled (fitted on train only), with weights.

Sample weights are each row's average uniqueness (from Phase 1) times a class weight
learned from the training labels (``class_weight="balanced"``: n / (3 * count)), scaled so
training weights average 1.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.preprocessing import RobustScaler

from factory.adapters.base import TabularInput
from factory.dataset import Dataset, labels_to_index
from factory.errors import FactoryError

SCALERS = ("standard", "robust")


def chunked_mean_std(X: np.ndarray, rows: np.ndarray,
                     chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std (ddof 0, zeros -> 1, as StandardScaler) of ``X[rows]``, in float64,
    reading ``chunk`` rows at a time so no full copy of the rows is made."""
    rows = np.asarray(rows)
    total = np.zeros(X.shape[1])
    for start in range(0, len(rows), chunk):
        total += X[rows[start:start + chunk]].sum(axis=0, dtype=np.float64)
    mean = total / max(len(rows), 1)
    sq = np.zeros(X.shape[1])
    for start in range(0, len(rows), chunk):
        part = X[rows[start:start + chunk]].astype(np.float64) - mean
        sq += (part * part).sum(axis=0)
    std = np.sqrt(sq / max(len(rows), 1))
    return mean, np.where(std > 0, std, 1.0)


class TabularAdapter(BaseEstimator):
    """2-D adapter (``conf/adapter/tabular.yaml``).

    Parameters
    ----------
    scaler: ``"auto"`` (the model's ``scaling`` attribute), ``"standard"``, ``"robust"`` or
        ``"none"``.
    class_weight: ``"balanced"`` or ``"none"``.
    sample_weight: ``"uniqueness"`` (Phase-1 weights) or ``"none"``.
    clip: after scaling, clip values to [-clip, clip] (robust to outliers); None to skip.
    """

    kind = "tabular"

    def __init__(
        self,
        scaler: str = "auto",
        class_weight: str = "balanced",
        sample_weight: str = "uniqueness",
        clip: float | None = 10.0,
    ) -> None:
        valid = {"scaler": ("auto", "none", *SCALERS), "class_weight": ("balanced", "none"),
                 "sample_weight": ("uniqueness", "none")}
        for key, val in (("scaler", scaler), ("class_weight", class_weight),
                         ("sample_weight", sample_weight)):
            if val not in valid[key]:
                raise FactoryError(f"`adapter.{key}` must be one of {valid[key]}, got {val!r}")
        self.scaler = scaler
        self.class_weight = class_weight
        self.sample_weight = sample_weight
        self.clip = clip

    def fit(self, ds: Dataset, rows: np.ndarray, model=None) -> TabularAdapter:
        """Learn the scaler and class weights from training rows only."""
        kind = self.scaler if self.scaler != "auto" else getattr(model, "scaling", "none")
        if kind not in ("none", *SCALERS):
            raise FactoryError(f"unknown scaling {kind!r} requested by {type(model).__name__}")
        self.scaling_ = kind
        self.center_ = self.scale_ = None
        if kind == "standard":  # chunked: no copy of the training rows (windowed adapters)
            self.center_, self.scale_ = chunked_mean_std(ds.matrix(), rows)
        elif kind == "robust":
            fitted = RobustScaler().fit(ds.matrix()[rows])
            self.center_ = np.asarray(fitted.center_, np.float64)
            self.scale_ = np.asarray(fitted.scale_, np.float64)
        self.feature_names_ = list(ds.X.columns)
        self._fit_weights(ds, rows)
        return self

    def _fit_weights(self, ds: Dataset, rows: np.ndarray) -> None:
        """Class weights and the weight scale, from the training rows' labels."""
        y = labels_to_index(ds.meta["label"].to_numpy()[rows])
        counts = np.bincount(y, minlength=3).astype(np.float64)
        if self.class_weight == "balanced":
            self.class_weight_ = np.where(counts > 0, counts.sum() / (3 * np.maximum(counts, 1)), 0)
        else:
            self.class_weight_ = np.ones(3)
        raw = self._raw_weight(ds, rows, y)
        self.weight_scale_ = 1.0 / raw.mean() if raw.size and raw.mean() > 0 else 1.0

    def _raw_weight(self, ds: Dataset, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
        base = (ds.meta["weight"].to_numpy()[rows] if self.sample_weight == "uniqueness"
                else np.ones(len(rows)))
        return base * self.class_weight_[y]

    def transform_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        if self.center_ is not None:
            X = ((X - self.center_) / self.scale_).astype(np.float32)
            if self.clip is not None:
                np.clip(X, -self.clip, self.clip, out=X)
        return X

    def weights(self, ds: Dataset, rows: np.ndarray, y: np.ndarray | None) -> np.ndarray | None:
        """Training weights of ``rows`` (None for new, unlabelled bars)."""
        if y is None:
            return None
        return (self._raw_weight(ds, rows, y) * self.weight_scale_).astype(np.float64)

    def transform(self, ds: Dataset, rows: np.ndarray) -> TabularInput:
        y = ds.label_index(rows)
        return self.input_from_rows(ds.matrix()[rows], y, self.weights(ds, rows, y))

    def input_from_rows(self, X: np.ndarray, y: np.ndarray | None = None,
                        weight: np.ndarray | None = None) -> TabularInput:
        """The model input of the feature rows ``X`` (one sample per row): the path of
        :meth:`transform`, also fed directly by a streamer's newest row (no Dataset)."""
        return TabularInput(X=self.transform_matrix(X), y=y, weight=weight,
                            feature_names=self.feature_names_)

    def state(self) -> dict:
        """Everything learned in ``fit``, as JSON-able values (saved beside the model)."""
        def as_list(a):
            return None if a is None else np.asarray(a).tolist()

        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": {"scaler": self.scaler, "class_weight": self.class_weight,
                       "sample_weight": self.sample_weight, "clip": self.clip},
            "scaling": self.scaling_, "center": as_list(self.center_),
            "scale": as_list(self.scale_), "class_weight": as_list(self.class_weight_),
            "weight_scale": self.weight_scale_, "features": self.feature_names_,
        }

    @classmethod
    def from_state(cls, state: dict) -> TabularAdapter:
        """Rebuild a fitted adapter from :meth:`state` (no refitting, no pickle)."""
        adapter = cls(**state["params"])
        adapter.scaling_ = state["scaling"]
        adapter.center_ = None if state["center"] is None else np.asarray(state["center"])
        adapter.scale_ = None if state["scale"] is None else np.asarray(state["scale"])
        adapter.class_weight_ = np.asarray(state["class_weight"])
        adapter.weight_scale_ = float(state["weight_scale"])
        adapter.feature_names_ = list(state["features"])
        return adapter
