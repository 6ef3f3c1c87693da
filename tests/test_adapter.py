"""The tabular adapter learns scaling and class weights from training rows only."""

from __future__ import annotations

import numpy as np

from factory.adapters.tabular import TabularAdapter
from factory.phase1 import load_or_build


class _Linear:
    scaling = "standard"


def test_scaler_and_weights_fitted_on_train_only(make_cfg):
    ds, _, _ = load_or_build(make_cfg())
    train = ds.rows("train")
    adapter = TabularAdapter().fit(ds, train, _Linear())
    expected = ds.X.to_numpy()[train].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(adapter.center_, expected, rtol=1e-4, atol=1e-7)
    # tamper with every non-training row: nothing learned changes
    tampered = ds.X.copy()
    tampered.iloc[np.setdiff1d(np.arange(len(ds.X)), train)] *= 1000.0
    ds.X = tampered
    again = TabularAdapter().fit(ds, train, _Linear())
    np.testing.assert_array_equal(again.center_, adapter.center_)
    np.testing.assert_array_equal(again.scale_, adapter.scale_)
    np.testing.assert_array_equal(again.class_weight_, adapter.class_weight_)
    x = again.transform(ds, train)
    assert abs(x.weight.mean() - 1.0) < 1e-9
    counts = np.bincount(x.y, minlength=3)
    # balanced: each class carries the same total class weight
    totals = again.class_weight_ * counts
    np.testing.assert_allclose(totals, totals[0])


def test_trees_are_not_scaled(make_cfg):
    ds, _, _ = load_or_build(make_cfg())

    class _Tree:
        scaling = "none"

    adapter = TabularAdapter().fit(ds, ds.rows("train"), _Tree())
    rows = ds.rows("val")
    np.testing.assert_array_equal(adapter.transform(ds, rows).X, ds.X.to_numpy()[rows])


def test_adapter_state_round_trip(make_cfg):
    import json

    ds, _, _ = load_or_build(make_cfg())
    adapter = TabularAdapter().fit(ds, ds.rows("train"), _Linear())
    restored = TabularAdapter.from_state(json.loads(json.dumps(adapter.state())))
    rows = ds.rows("test")
    a, b = adapter.transform(ds, rows), restored.transform(ds, rows)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.weight, b.weight)


def test_chunked_standardisation_matches_sklearn_without_copying_rows():
    from sklearn.preprocessing import StandardScaler

    from factory.adapters.tabular import chunked_mean_std

    rng = np.random.default_rng(3)
    X = (rng.standard_normal((5000, 6)) * [1, 10, 0.1, 5, 2, 1] + 3).astype(np.float32)
    X[:, 5] = 7.0  # constant column: scale 1, as scikit-learn
    rows = np.sort(rng.choice(5000, 3001, replace=False))
    mean, std = chunked_mean_std(X, rows, chunk=128)
    ref = StandardScaler().fit(X[rows])
    np.testing.assert_allclose(mean, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(std, ref.scale_, rtol=1e-5)
