"""Walk-forward feature selection: MDA permutation importance inside purged training folds.

Mean decrease accuracy (López de Prado, *Advances in Financial ML*, 8.3.2; clustered MDA,
*Machine Learning for Asset Managers*, 6.5): for each purged fold of the **training rows
only** (Phase 1 cuts them with :class:`~factory.splits.kfold.PurgedKFold` and passes them in;
validation and test rows never enter), a LightGBM classifier is fitted on the fold's training
part, its weighted log loss measured on the fold's held-out part, and measured again with one
feature's values (or one cluster's, jointly) shuffled among those rows. The importance is the
mean increase in log loss over folds: how much the fold's out-of-sample fit relied on it.
Then ``top_k`` (the largest) and/or ``threshold`` (importance above it) decide which columns
Phase 1 keeps; the result is cached with the dataset (the selection config is part of
``cfg.features`` and so of the Phase-1 key) and reported in ``info.report.selection``.

Clustered MDA (``clustered: true``) first groups features whose absolute correlation on the
training rows is high (average-linkage hierarchical clustering on ``1 - |rho|``, cut at
``cluster_distance``) and shuffles each cluster as a block, so that two near-copies of one
signal do not hide each other (shuffling one leaves the other); the selection then keeps or
drops whole clusters (``top_k`` counts clusters).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from factory.errors import FactoryError

log = logging.getLogger(__name__)


class FeatureSelection:
    """Configured by ``features.selection`` (see the module docstring).

    Parameters
    ----------
    top_k: keep this many features (clusters when ``clustered``); None: no count limit.
    threshold: keep those whose importance (increase in log loss) is above it; None: any.
    clustered: shuffle correlated clusters jointly (clustered MDA).
    cluster_distance: cut height of the clustering on ``1 - |rho|`` (0.5: |rho| > ~0.5).
    n_splits: purged folds of the training rows.
    n_repeats: shuffles per feature and fold (averaged).
    n_estimators, num_leaves, learning_rate: the LightGBM classifier of each fold.
    max_rows: at most this many rows fitted per fold (evenly spaced, deterministic).
    seed: shuffles and the classifier's seed.
    """

    def __init__(self, top_k: int | None = 20, threshold: float | None = None,
                 clustered: bool = False, cluster_distance: float = 0.5, n_splits: int = 3,
                 n_repeats: int = 1, n_estimators: int = 100, num_leaves: int = 15,
                 learning_rate: float = 0.1, max_rows: int = 20_000, seed: int = 0) -> None:
        if top_k is None and threshold is None:
            raise FactoryError("`features.selection` needs `top_k` and/or `threshold` "
                               "(e.g. `features.selection={top_k: 20}`)")
        if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
            raise FactoryError(f"`features.selection.top_k` must be an int >= 1, got {top_k!r}")
        if int(n_splits) < 2 or int(n_repeats) < 1:
            raise FactoryError("`features.selection.n_splits` must be >= 2 and `n_repeats` "
                               f">= 1, got {n_splits!r} and {n_repeats!r}")
        if not 0.0 < float(cluster_distance) <= 1.0:
            raise FactoryError(f"`features.selection.cluster_distance` must be in (0, 1], got "
                               f"{cluster_distance!r}")
        self.top_k = None if top_k is None else int(top_k)
        self.threshold = None if threshold is None else float(threshold)
        self.clustered = bool(clustered)
        self.cluster_distance = float(cluster_distance)
        self.n_splits = int(n_splits)
        self.n_repeats = int(n_repeats)
        self.n_estimators = int(n_estimators)
        self.num_leaves = int(num_leaves)
        self.learning_rate = float(learning_rate)
        self.max_rows = int(max_rows)
        self.seed = int(seed)

    def clusters(self, X: np.ndarray) -> list[list[int]]:
        """Column groups: singletons, or correlation clusters (ordered by first member)."""
        n = X.shape[1]
        if not self.clustered or n < 2:
            return [[j] for j in range(n)]
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        corr = np.nan_to_num(np.corrcoef(X, rowvar=False), nan=0.0)
        dist = np.clip(1.0 - np.abs(corr), 0.0, 1.0)
        np.fill_diagonal(dist, 0.0)
        labels = fcluster(linkage(squareform(dist, checks=False), "average"),
                          t=self.cluster_distance, criterion="distance")
        groups: dict[int, list[int]] = {}
        for j, lab in enumerate(labels):
            groups.setdefault(int(lab), []).append(j)
        return sorted(groups.values(), key=lambda g: g[0])

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray):
        import lightgbm as lgb

        model = lgb.LGBMClassifier(
            n_estimators=self.n_estimators,
            num_leaves=self.num_leaves, learning_rate=self.learning_rate,
            random_state=self.seed, deterministic=True, force_row_wise=True, n_jobs=1,
            verbose=-1)
        return model.fit(X, y, sample_weight=w)

    @staticmethod
    def _proba(model, x: np.ndarray) -> np.ndarray:
        """(n, 3) probabilities of classes 0/1/2, whichever the fold's training saw."""
        out = np.full((len(x), 3), 1e-15)
        out[:, model.classes_.astype(np.int64)] = model.predict_proba(x)
        return out

    def importance(self, X: pd.DataFrame, y: np.ndarray, weight: np.ndarray,
                   folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[pd.Series, list]:
        """MDA per column (clusters share their value) and the clusters; reads only the rows
        named in ``folds``. ``y`` holds class indices 0/1/2."""
        from sklearn.metrics import log_loss

        used = np.unique(np.concatenate([np.concatenate(f) for f in folds]))
        groups = self.clusters(X.to_numpy(np.float64)[used])
        rng = np.random.default_rng(self.seed)
        scores = np.zeros((len(folds), len(groups)))
        for i, (train, test) in enumerate(folds):
            step = max(1, int(np.ceil(len(train) / self.max_rows)))
            fit_rows = np.asarray(train)[::step]
            model = self._fit(X.to_numpy(np.float32)[fit_rows], y[fit_rows], weight[fit_rows])
            x_test = X.to_numpy(np.float32)[test]
            kw = {"labels": [0, 1, 2], "sample_weight": weight[test]}
            base = log_loss(y[test], self._proba(model, x_test), **kw)
            for g, cols in enumerate(groups):
                for _ in range(self.n_repeats):
                    shuffled = x_test.copy()
                    shuffled[:, cols] = x_test[rng.permutation(len(test))][:, cols]
                    scores[i, g] += log_loss(y[test], self._proba(model, shuffled), **kw) - base
        scores /= self.n_repeats
        per_group = scores.mean(axis=0)
        values = np.empty(X.shape[1])
        for g, cols in enumerate(groups):
            values[cols] = per_group[g]
        return pd.Series(values, index=X.columns, name="mda"), groups

    def select(self, X: pd.DataFrame, y: np.ndarray, weight: np.ndarray,
               folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[str], dict]:
        """Columns to keep (in ``X``'s order) and a report of the importances."""
        if not folds:
            raise FactoryError("feature selection got no folds: more training rows, or fewer "
                               "`features.selection.n_splits`")
        t0 = time.perf_counter()
        mda, groups = self.importance(X, np.asarray(y), np.asarray(weight, np.float64), folds)
        group_score = np.array([mda.iloc[g[0]] for g in groups])
        order = np.argsort(-group_score, kind="stable")
        keep = [k for k in order if self.threshold is None or group_score[k] > self.threshold]
        if self.top_k is not None:
            keep = keep[: self.top_k]
        if not keep:  # nothing clears the threshold: keep the best one, loudly
            log.warning("feature selection: no feature above threshold %s; keeping the best",
                        self.threshold)
            keep = [int(order[0])]
        chosen = {X.columns[j] for k in keep for j in groups[k]}
        kept = [c for c in X.columns if c in chosen]
        report = {"method": "clustered_mda" if self.clustered else "mda",
                  "kept": kept, "dropped": [c for c in X.columns if c not in chosen],
                  "importance": {k: float(v) for k, v in mda.items()},
                  "clusters": [[X.columns[j] for j in g] for g in groups if len(g) > 1],
                  "folds": len(folds), "seconds": round(time.perf_counter() - t0, 3)}
        log.info("feature selection (%s): kept %d of %d columns in %.1fs", report["method"],
                 len(kept), X.shape[1], report["seconds"])
        return kept, report
