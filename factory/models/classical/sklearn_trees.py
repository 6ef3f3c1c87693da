"""Pickle-free (de)serialisation of scikit-learn tree ensembles.

Each fitted ``Tree`` exposes its arrays through ``__getstate__`` (``max_depth``,
``node_count``, ``nodes`` -- a numpy structured array -- and ``values``). All trees of a
forest are concatenated into ONE ``.npz`` (plain numeric and structured dtypes, so it loads
with ``allow_pickle=False``) and rebuilt with ``Tree(...).__setstate__``. The node layout is
specific to the scikit-learn version, so the writer's ``major.minor`` is recorded and checked.

:func:`forest_proba` averages the trees in a fixed order (threads split rows, not trees):
scikit-learn's own threaded accumulation order varies, so two identical forests would differ
in the last bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.errors import FactoryError


def sklearn_version() -> str:
    import sklearn

    return ".".join(sklearn.__version__.split(".")[:2])


def forest_proba(trees: list, X: np.ndarray, n_jobs: int | None) -> np.ndarray:
    """Mean class probability of ``trees``; bit-for-bit reproducible for any ``n_jobs``."""
    from joblib import Parallel, delayed, effective_n_jobs

    X = np.ascontiguousarray(X, dtype=np.float32)

    def mean(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), trees[0].n_classes_))
        for tree in trees:
            out += tree.predict_proba(rows, check_input=False)
        return out / len(trees)

    n_chunks = max(1, min(effective_n_jobs(n_jobs), len(X) // 1000))
    if n_chunks == 1:
        return mean(X)
    parts = Parallel(n_jobs=n_chunks, prefer="threads")(
        delayed(mean)(rows) for rows in np.array_split(X, n_chunks))
    return np.concatenate(parts)


def save_trees(trees: list, file: Path) -> None:
    """Write the ``tree_`` of every fitted DecisionTree in ``trees`` into one ``.npz``."""
    states = [t.tree_.__getstate__() for t in trees]
    np.savez(
        file,
        nodes=np.concatenate([s["nodes"] for s in states]),
        values=np.concatenate([s["values"] for s in states]),
        node_count=np.array([s["node_count"] for s in states], np.int64),
        max_depth=np.array([s["max_depth"] for s in states], np.int64),
    )


def load_trees(file: Path, state: dict) -> list:
    """Rebuild fitted DecisionTreeClassifiers from :func:`save_trees` output and ``state``."""
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    saved = state.get("sklearn_version")
    if saved != sklearn_version():
        raise FactoryError(
            f"{file}: trees were saved with scikit-learn {saved} but {sklearn_version()} is "
            f"installed; the node layout is version-specific -- install scikit-learn=={saved}.* "
            "or retrain the model"
        )
    n_features, n_outputs = int(state["n_features_in"]), int(state["n_outputs"])
    n_classes = int(state["n_classes"])
    classes = np.asarray(state["classes"], np.int64)
    with np.load(file, allow_pickle=False) as data:
        nodes, values = data["nodes"], data["values"]
        counts, depths = data["node_count"], data["max_depth"]
    ends = np.cumsum(counts)
    trees = []
    for end, count, depth in zip(ends, counts, depths, strict=True):
        tree = Tree(n_features, np.array([n_classes], dtype=np.intp), n_outputs)
        tree.__setstate__({
            "max_depth": int(depth),
            "node_count": int(count),
            "nodes": np.ascontiguousarray(nodes[end - count:end]),
            "values": np.ascontiguousarray(values[end - count:end]),
        })
        est = DecisionTreeClassifier()
        est.tree_ = tree
        est.n_features_in_ = n_features
        est.n_outputs_ = n_outputs
        est.classes_ = classes
        est.n_classes_ = n_classes
        est.max_features_ = int(state.get("max_features", n_features))
        trees.append(est)
    return trees
