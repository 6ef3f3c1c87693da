"""A small gradient-boosting meta-learner, saved as its trees' arrays (no pickle).

scikit-learn's ``HistGradientBoostingClassifier`` fits the trees. Its fitted predictors are
exported into flat node arrays (feature, threshold, children, leaf value, missing-value
direction, split gain) that are plain JSON; prediction walks the trees in a compiled (numba)
loop with the same rule scikit-learn applies (``x <= threshold`` goes left, NaN follows
``missing_go_to_left``), then ``softmax(baseline + sum of tree values)``. The fitted and the
reloaded learner run the same code on the same arrays, so they agree bit-for-bit; against
scikit-learn's own ``predict_proba`` they agree to float rounding (tested).

``n_jobs`` caps scikit-learn's OpenMP threads (default 1): on a few hundred thousand rows x
``3 m`` features the trees are tiny and extra threads mostly spin; on a loaded 2-core machine
one thread was 10x faster than the default. Early stopping is off by default: scikit-learn's
version holds out a *random* share of rows, and the meta-learner is small (few, shallow trees,
large leaves) so it has little to stop.
``describe()`` weights: each model's share of total split gain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from factory.dataset import place_columns
from factory.ensemble.common import (
    Combiner,
    as_labels,
    as_proba_stack,
    as_weights,
    softmax,
    stack_features,
)
from factory.threads import resolve_threads

NODE_FIELDS = ("feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf",
               "value", "gain")


def export_trees(est: Any) -> dict:
    """Flat node arrays of every tree (children as global indices) plus roots and baseline."""
    nodes = [pred.nodes for it in est._predictors for pred in it]
    if any(nd["is_categorical"].any() for nd in nodes):  # never set: no categorical features
        raise RuntimeError("categorical splits are not supported by the tree export")
    offsets = np.cumsum([0] + [len(nd) for nd in nodes[:-1]])
    flat = np.concatenate(nodes)
    out = {f: flat[f] for f in NODE_FIELDS}
    starts = np.repeat(offsets, [len(nd) for nd in nodes])
    leaf = flat["is_leaf"].astype(bool)
    out["left"] = np.where(leaf, -1, flat["left"].astype(np.int64) + starts)
    out["right"] = np.where(leaf, -1, flat["right"].astype(np.int64) + starts)
    return {"nodes": {k: v.tolist() for k, v in out.items()}, "roots": offsets.tolist(),
            "baseline": np.asarray(est._baseline_prediction, np.float64).ravel().tolist(),
            "n_per_iter": len(est._predictors[0]), "classes": est.classes_.tolist()}


@njit(cache=True, nogil=True)
def _walk(X, feature, threshold, missing_left, left, right, leaf, value, roots, k):
    """Sum of leaf values per row and class over every tree (trees in iteration order)."""
    out = np.zeros((X.shape[0], k))
    for i in range(X.shape[0]):
        for t in range(roots.shape[0]):
            node = roots[t]
            while not leaf[node]:
                x = X[i, feature[node]]
                if np.isnan(x):
                    node = left[node] if missing_left[node] else right[node]
                elif x <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            out[i, t % k] += value[node]
    return out


def raw_predict(trees: dict, F: np.ndarray) -> np.ndarray:
    """``(n, k)`` raw scores: the baseline plus the leaf values of every tree."""
    nd = trees["nodes"]
    summed = _walk(np.ascontiguousarray(F, dtype=np.float64),
                   np.asarray(nd["feature_idx"], np.int64),
                   np.asarray(nd["num_threshold"], np.float64),
                   np.asarray(nd["missing_go_to_left"], np.bool_),
                   np.asarray(nd["left"], np.int64), np.asarray(nd["right"], np.int64),
                   np.asarray(nd["is_leaf"], np.bool_), np.asarray(nd["value"], np.float64),
                   np.asarray(trees["roots"], np.int64), int(trees["n_per_iter"]))
    return summed + np.asarray(trees["baseline"], np.float64)


class GradientBoostingMeta(Combiner):
    """Small ``HistGradientBoostingClassifier`` on the stacked (log-odds) probabilities."""

    kind = "gradient_boosting"

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 8, min_samples_leaf: int = 40, max_bins: int = 255,
                 l2_regularization: float = 1.0, early_stopping: bool = False,
                 use_log_odds: bool = True, n_jobs: int = 1, random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.max_bins = max_bins
        self.l2_regularization = l2_regularization
        self.early_stopping = early_stopping
        self.use_log_odds = use_log_odds
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, P: Any, y: Any, sample_weight: Any = None,
            R: Any = None) -> GradientBoostingMeta:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        P = as_proba_stack(P)
        y = as_labels(y, len(P))
        s = as_weights(sample_weight, len(P))
        est = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            max_bins=self.max_bins, l2_regularization=self.l2_regularization,
            early_stopping=self.early_stopping, random_state=self.random_state)
        # uniform weights are passed as None: identical trees, and it skips scikit-learn's
        # weighted binning (one weighted percentile per bin and feature: ~0.2 s per feature)
        weight = None if np.all(s == s[0]) else s
        with threadpool_limits(limits=resolve_threads(self.n_jobs), user_api="openmp"):
            est.fit(stack_features(P, self.use_log_odds), y, sample_weight=weight)
        self.trees_ = export_trees(est)
        self.n_models_ = P.shape[1]
        return self

    def predict_proba(self, P: Any, R: Any = None) -> np.ndarray:
        self._check_fitted()
        F = stack_features(as_proba_stack(P, self.n_models_), self.use_log_odds)
        raw = raw_predict(self.trees_, F)
        if raw.shape[1] == 1:  # binary: sigmoid(raw) == softmax([-raw/2, raw/2])
            raw = np.hstack([-raw / 2, raw / 2])
        return place_columns(softmax(raw), self.trees_["classes"])

    def model_weights(self) -> np.ndarray:
        self._check_fitted()
        nd = self.trees_["nodes"]
        inner = ~np.asarray(nd["is_leaf"], bool)
        feature = np.asarray(nd["feature_idx"], np.int64)[inner]
        gain = np.clip(np.asarray(nd["gain"], np.float64)[inner], 0.0, None)
        per_model = np.bincount(feature // 3, weights=gain, minlength=self.n_models_)
        total = per_model.sum()
        return per_model / total if total > 0 else np.full(self.n_models_, 1.0 / self.n_models_)

    def _details(self, names: list[str]) -> dict:
        return {"n_trees": len(self.trees_["roots"])}

    def _fitted_state(self) -> dict:
        return {"trees": self.trees_}

    def _load_fitted(self, fitted: dict) -> None:
        self.trees_ = fitted["trees"]
