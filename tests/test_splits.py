"""Holdout split: exact indices by hand, and the no-overlap property under random labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory.errors import FactoryError
from factory.splits.holdout import HoldoutSplit


def _names(split, n=100, span=3):
    bar = np.arange(n)
    return split.assign_symbol(bar, bar + span)


def test_exact_indices_purge_only():
    names = _names(HoldoutSplit(purge_bars=2, embargo_bars=0))
    # cut points 70 and 85; train rows with exit >= 68 (bar >= 65) purged; val rows with
    # exit >= 83 (bar >= 80) purged; test keeps all
    assert np.flatnonzero(names == "train").tolist() == list(range(0, 65))
    assert np.flatnonzero(names == "val").tolist() == list(range(70, 80))
    assert np.flatnonzero(names == "test").tolist() == list(range(85, 100))
    assert (names == "gap").sum() == 10


def test_exact_indices_embargo_dominates():
    names = _names(HoldoutSplit(purge_bars=2, embargo_bars=10))
    assert np.flatnonzero(names == "train").tolist() == list(range(0, 60))
    assert np.flatnonzero(names == "val").tolist() == list(range(70, 75))
    assert np.flatnonzero(names == "test").tolist() == list(range(85, 100))


def test_long_labels_are_purged_by_end_time():
    bar = np.arange(100)
    exit_idx = bar + 1
    exit_idx[10] = 90  # one label spanning into test
    names = HoldoutSplit(purge_bars=0, embargo_bars=0).assign_symbol(bar, exit_idx)
    assert names[10] == "gap" and names[9] == "train"


def test_per_symbol_and_empty_split_error():
    meta = pd.DataFrame({"symbol": ["A"] * 50 + ["B"] * 50,
                         "bar_idx": np.r_[np.arange(50), np.arange(50)],
                         "exit_idx": np.r_[np.arange(50), np.arange(50)] + 2})
    names = HoldoutSplit(purge_bars=1, embargo_bars=0).assign(meta)
    for sym in "AB":
        sub = names[meta["symbol"] == sym]
        assert sub[0] == "train" and sub[-1] == "test"
    with pytest.raises(FactoryError, match=r"split 'train' for symbol A is empty.*data.days"):
        HoldoutSplit(purge_bars=1, embargo_bars=40).assign(meta)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(60, 400), spans=st.lists(st.integers(1, 40), min_size=1, max_size=50),
       purge=st.integers(0, 30), embargo=st.integers(0, 50))
def test_no_training_label_overlaps_a_later_block(n, spans, purge, embargo):
    bar = np.arange(n) * 2  # sparse bar positions, as after warm-up and gaps
    exit_idx = bar + np.resize(np.asarray(spans), n)
    names = HoldoutSplit(purge_bars=purge, embargo_bars=embargo).assign_symbol(bar, exit_idx)
    for earlier, later in (("train", "val"), ("train", "test"), ("val", "test")):
        a, b = names == earlier, names == later
        if a.any() and b.any():
            assert exit_idx[a].max() < bar[b].min() - purge  # label ends before the gap
            assert bar[a].max() < bar[b].min() - embargo or embargo == 0
