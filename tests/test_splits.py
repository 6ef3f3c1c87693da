"""Holdout split: exact indices by hand, and the no-overlap property under random labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from factory.errors import FactoryError
from factory.splits.holdout import HoldoutSplit


def _names(split, n=100, span=3):
    bar = np.arange(n)
    return split.assign_symbol(bar, bar + span)


def test_exact_indices_purge_only():
    names = _names(HoldoutSplit(purge_bars=2, embargo_bars=0))
    # 10 gap rows (5 per boundary) -> 90 usable: test = val = floor(0.15 x 90) = 13.
    # test 87..99; val rows with exit >= 85 (bar >= 82) purged -> val 69..81; train rows with
    # exit >= 67 (bar >= 64) purged -> train 0..63
    assert np.flatnonzero(names == "train").tolist() == list(range(0, 64))
    assert np.flatnonzero(names == "val").tolist() == list(range(69, 82))
    assert np.flatnonzero(names == "test").tolist() == list(range(87, 100))
    assert (names == "gap").sum() == 10


def test_exact_indices_embargo_dominates():
    names = _names(HoldoutSplit(purge_bars=2, embargo_bars=10))
    # 20 gap rows (embargo: 10 per boundary) -> 80 usable: test = val = 12
    assert np.flatnonzero(names == "train").tolist() == list(range(0, 56))
    assert np.flatnonzero(names == "val").tolist() == list(range(66, 78))
    assert np.flatnonzero(names == "test").tolist() == list(range(88, 100))


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
    with pytest.raises(FactoryError, match=r"split 'val' for symbol A is empty.*data.days"):
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


@settings(max_examples=60, deadline=None)
@given(n=st.integers(200, 3000), span=st.integers(1, 30), purge=st.integers(0, 40),
       embargo=st.integers(0, 120), step=st.integers(1, 3))
def test_val_and_test_have_the_same_size_after_gaps(n, span, purge, embargo, step):
    """Fractions are of the usable rows: the embargo no longer comes out of validation."""
    bar = np.arange(n) * step
    names = HoldoutSplit(purge_bars=purge, embargo_bars=embargo).assign_symbol(bar, bar + span)
    n_val, n_test = int((names == "val").sum()), int((names == "test").sum())
    assume(n_val > 0 and (names == "train").any())  # else assign() names the empty split
    usable = n - int((names == "gap").sum())
    assert n_val == n_test == int(np.floor(0.15 * usable))
