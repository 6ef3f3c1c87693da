"""`features.selection`: MDA inside purged training folds, clustered MDA, top-k / threshold,
cached with Phase 1, and blind to every row after the training block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.config import build
from factory.errors import FactoryError
from factory.features.selection import FeatureSelection
from factory.phase1 import build_dataset, load_or_build, phase1_key
from tests.conftest import compose_config


def _toy(n: int = 3000, seed: int = 0):
    """y depends on `a` strongly and `b` weakly; `a2` is a near copy of `a`; the rest noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    X = pd.DataFrame({"noise1": rng.normal(size=n), "a": a, "b": b,
                      "a2": a + 0.05 * rng.normal(size=n), "noise2": rng.normal(size=n)},
                     dtype=np.float32)
    score = 2.0 * a + 0.7 * b + rng.normal(size=n)
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))  # classes 0 / 1 / 2
    folds = [(np.r_[0:1000, 1100:2000], np.r_[2000:3000]),
             (np.r_[1100:2000, 2100:3000], np.r_[0:1000])]
    return X, y, np.ones(n), folds


FAST = {"n_estimators": 40, "seed": 0}


def test_mda_ranks_the_signal_and_top_k_or_threshold_select():
    X, y, w, folds = _toy()
    kept, report = FeatureSelection(top_k=2, **FAST).select(X, y, w, folds)
    imp = pd.Series(report["importance"])
    assert imp["b"] > imp[["noise1", "noise2"]].max() + 0.01
    assert set(kept) <= {"a", "a2", "b"} and len(kept) == 2 and report["method"] == "mda"
    assert report["dropped"] == [c for c in X.columns if c not in kept]  # column order kept
    kept_t, _ = FeatureSelection(top_k=None, threshold=0.005, **FAST).select(X, y, w, folds)
    assert kept_t == [c for c in X.columns if imp[c] > 0.005] and "b" in kept_t
    lone, _ = FeatureSelection(top_k=None, threshold=10.0, **FAST).select(X, y, w, folds)
    assert lone == [imp.idxmax()]  # nothing clears the threshold: the best one, warned


def test_clustered_mda_shuffles_near_copies_together():
    X, y, w, folds = _toy()
    plain = pd.Series(FeatureSelection(top_k=1, **FAST).select(X, y, w, folds)[1]["importance"])
    kept, report = FeatureSelection(top_k=1, clustered=True, **FAST).select(X, y, w, folds)
    assert report["clusters"] == [["a", "a2"]] and kept == ["a", "a2"]
    clustered = pd.Series(report["importance"])
    assert clustered["a"] == clustered["a2"]
    # alone, each copy hides behind the other; shuffled together their signal shows
    assert clustered["a"] > 2 * max(plain["a"], plain["a2"])


def test_rows_outside_the_folds_cannot_change_the_selection():
    X, y, w, folds = _toy()
    spec = FeatureSelection(top_k=3, clustered=True, **FAST)
    base = spec.select(X, y, w, folds)
    used = np.unique(np.concatenate([np.concatenate(f) for f in folds]))
    outside = np.setdiff1d(np.arange(len(X)), used)
    X2, y2, w2 = X.copy(), y.copy(), w.copy()
    X2.iloc[outside] = 1e6
    y2[outside] = 0
    w2[outside] = 50.0
    again = spec.select(X2, y2, w2, folds)
    assert again[0] == base[0] and again[1]["importance"] == base[1]["importance"]


def test_phase1_selection_ignores_bars_after_the_training_block(tmp_path):
    over = ["features.selection={top_k: 6, n_estimators: 30, clustered: true}"]
    cfg = compose_config(tmp_path, *over)
    ds, key, _ = load_or_build(cfg)
    sel = ds.info["report"]["selection"]
    assert list(ds.X.columns) == sel["kept"] and len(sel["kept"]) >= 6
    assert key != phase1_key(compose_config(tmp_path)) and key != phase1_key(
        compose_config(tmp_path, "features.selection={top_k: 5}"))  # cached by its settings
    # poison every bar from the first validation row on: prices x 10, volume x 100
    barset = build(cfg.data).load()
    for sym in barset.symbols:
        meta = ds.meta[ds.meta["symbol"] == sym]
        first_val = meta.loc[meta["split"] == "val", "bar_idx"].min()
        bars = barset.bars[sym]
        bars.iloc[first_val:, :4] *= 10.0
        bars.iloc[first_val:, 4] *= 100.0
        barset.fine.pop(sym, None)  # the 1-minute bars are not used by the core set
    poisoned = build_dataset(barset, build(cfg.features), build(cfg.labeling), build(cfg.cv))
    again = poisoned.info["report"]["selection"]
    assert again["kept"] == sel["kept"] and again["importance"] == sel["importance"]
    assert not poisoned.X.iloc[poisoned.rows("test")].equals(ds.X.iloc[ds.rows("test")])


def test_bad_selection_config_names_the_key():
    with pytest.raises(FactoryError, match=r"`features.selection` needs `top_k` and/or"):
        FeatureSelection(top_k=None)
    with pytest.raises(FactoryError, match=r"`features.selection.top_k` must be an int >= 1"):
        FeatureSelection(top_k=0)
    with pytest.raises(FactoryError, match=r"`features.selection.n_splits` must be >= 2"):
        FeatureSelection(n_splits=1)
