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
    # training block: rows < floor(0.7 x 100) = 70. Evaluation rows 70..99: the test block's
    # gap takes 5 val rows (exit >= start - 2), 25 are left: val = test = floor(25 / 2) = 12;
    # test 88..99, gap 83..87, val 71..82, spare row 70 -> gap; train rows with exit >= 69
    # (bar >= 66) purged -> train 0..65
    assert np.flatnonzero(names == "train").tolist() == list(range(0, 66))
    assert np.flatnonzero(names == "val").tolist() == list(range(71, 83))
    assert np.flatnonzero(names == "test").tolist() == list(range(88, 100))
    assert np.flatnonzero(names == "gap").tolist() == [66, 67, 68, 69, 70, 83, 84, 85, 86, 87]


def test_exact_indices_embargo_dominates():
    names = _names(HoldoutSplit(purge_bars=2, embargo_bars=10))
    # the test block's gap: 10 rows (embargo); 20 left: val = test = 10
    assert np.flatnonzero(names == "train").tolist() == list(range(0, 60))
    assert np.flatnonzero(names == "val").tolist() == list(range(70, 80))
    assert np.flatnonzero(names == "test").tolist() == list(range(90, 100))


def test_training_block_is_the_train_fraction_as_before():
    """The training rows are those of the old cut (rows < floor(0.7 n), less the purge and
    embargo before validation): `labeling.train_fraction=${cv.train}` still ends before the
    first validation bar."""
    bar = np.arange(1000) * 2
    exit_idx = bar + 7
    names = HoldoutSplit(purge_bars=5, embargo_bars=30).assign_symbol(bar, exit_idx)
    train = np.flatnonzero(names == "train")
    first_val = np.flatnonzero(names == "val")[0]
    assert train.max() < 700 <= first_val
    assert exit_idx[train].max() < bar[first_val] - 5


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
    """The test block's gap no longer comes out of validation alone: what is left of the
    evaluation part after it is shared equally (val = test = 0.15)."""
    bar = np.arange(n) * step
    names = HoldoutSplit(purge_bars=purge, embargo_bars=embargo).assign_symbol(bar, bar + span)
    n_val, n_test = int((names == "val").sum()), int((names == "test").sum())
    assume(n_val > 0 and (names == "train").any())  # else assign() names the empty split
    evaluation = names[int(np.floor(0.7 * n)):]
    assert n_val == n_test == (len(evaluation) - int((evaluation == "gap").sum()) + 1) // 2
    assert (evaluation == "gap").sum() <= max(embargo // step, (purge + span) // step) + 2
