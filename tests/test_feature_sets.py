"""Feature sets build through Phase 1; fitted features learn from training bars only."""

from __future__ import annotations

import numpy as np
import pytest

from factory.config import build
from factory.features.fitted import TrainFitted
from factory.phase1 import load_or_build

SETS = ["transformer_raw", "neural_optimal", "ensemble_base", "boosting_optimal", "full"]


@pytest.mark.parametrize("name", SETS)
def test_feature_set_builds_finite_and_pruned(make_cfg, name):
    ds, _, _ = load_or_build(make_cfg(f"features={name}", "data.days=28"))
    X = ds.X.to_numpy()
    assert np.isfinite(X).all() and ds.info["feature_set"] == name
    dropped = ds.info["report"]["features_dropped"]
    assert not set(ds.X.columns) & {c for cols in dropped.values() for c in cols}
    if name == "full":
        assert ds.X.shape[1] >= 150 and not dropped["correlated"]
        assert {"ret_1_1m", "ret_1_10m", "ret_1_1h", "hmm_p0", "ffd_fitted"} <= set(ds.X.columns)
    if "hmm_p0" in ds.X:
        probs = ds.X[["hmm_p0", "hmm_p1", "hmm_p2"]].to_numpy(np.float64)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        for sym in ("MES", "MGC"):
            assert ds.info["fitted"][sym]["hmm"]["params"]["means"]


def test_fitted_state_ignores_bars_after_the_training_block(make_cfg):
    from factory.data.synthetic import SyntheticSource

    bars = SyntheticSource(days=21, seed=2).load().bars["MES"]
    mask = np.arange(len(bars)) < 2500
    fitted = TrainFitted(hmm={"n_states": 3}, fracdiff={"window": 50})
    cols, state = fitted.fit_transform(bars, mask)
    shocked = bars.copy()
    shocked.iloc[2500:, :4] *= 10.0
    cols2, state2 = fitted.fit_transform(shocked, mask)
    assert state == state2 and state["fracdiff"]["d"] in np.round(np.arange(0, 1.01, 0.05), 2)
    for name in cols:  # causal too: nothing before the shock changes
        np.testing.assert_array_equal(cols[name][:2500], cols2[name][:2500])


def test_phase1_fits_on_each_symbols_training_bars(make_cfg):
    cfg = make_cfg("features=ensemble_base", "data.days=28")
    ds, _, _ = load_or_build(cfg)
    features = build(cfg.features)
    for sym in ("MES", "MGC"):
        meta = ds.meta[ds.meta["symbol"] == sym]
        train_end = meta.loc[meta["split"] == "train", "bar_idx"].max()
        assert train_end < meta.loc[meta["split"] == "val", "bar_idx"].min()
        _, state = features.fitted.fit_transform(ds.bars[sym],
                                                 np.arange(len(ds.bars[sym])) <= train_end)
        assert state == ds.info["fitted"][sym]


def test_catalog_order_does_not_depend_on_import_order():
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import factory.features.catalog.{} as _\n"
            "from factory.features.registry import catalog; print(list(catalog()))")
    orders = {subprocess.run([sys.executable, "-c", code.format(m)], cwd=ROOT, text=True,
                             capture_output=True, check=True).stdout
              for m in ("regime", "wavelet", "core")}
    assert len(orders) == 1
