"""Purged k-fold, walk-forward and CPCV: exact indices by hand, and leakage properties."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from factory.errors import FactoryError
from factory.splits.cpcv import CombinatorialPurgedCV
from factory.splits.holdout import HoldoutSplit
from factory.splits.kfold import PurgedKFold
from factory.splits.walk_forward import WalkForward

ALL = {"train": 1.0, "val": 0.0, "test": 0.0}  # no held-out block: CV over every row


def _two_symbols() -> pd.DataFrame:
    """A: 20 rows on bars 0..19 (rows 0..19); B: 10 rows on bars 100, 102, ..., 118 (rows
    20..29). Every label lasts 2 bars (exit = bar + 2)."""
    bar = np.r_[np.arange(20), 100 + 2 * np.arange(10)]
    return pd.DataFrame({"symbol": ["A"] * 20 + ["B"] * 10, "bar_idx": bar, "exit_idx": bar + 2})


def _splits(cv, X):
    return [(tr.tolist(), te.tolist()) for tr, te in cv.split(X)]


def test_kfold_exact_indices():
    # purge 1, embargo 4. Fold 0 tests A bars 0..3 (labels end 5): A rows with bar <= 6 are
    # purged (label overlaps [-1, 6]), bars 7..9 embargoed (start within 4 bars after 5).
    # B's fold 0 = bars 100, 102 (end 104): bar 104 purged, 106 and 108 embargoed.
    expected = [
        ([*range(10, 20), 25, 26, 27, 28, 29], [0, 1, 2, 3, 20, 21]),
        ([0, *range(14, 20), 20, 27, 28, 29], [4, 5, 6, 7, 22, 23]),
        ([0, 1, 2, 3, 4, 18, 19, 20, 21, 22, 29], [8, 9, 10, 11, 24, 25]),
        ([*range(0, 9), 20, 21, 22, 23, 24], [12, 13, 14, 15, 26, 27]),
        ([*range(0, 13), *range(20, 27)], [16, 17, 18, 19, 28, 29]),
    ]
    cv = PurgedKFold(n_splits=5, purge_bars=1, embargo_bars=4, **ALL)
    assert _splits(cv, _two_symbols()) == expected
    rep = cv.report()
    assert rep["n_purged"].tolist() == [4, 8, 8, 8, 4]
    assert rep["n_embargoed"].tolist() == [5, 5, 5, 2, 0]
    assert rep["n_train"].tolist() == [15, 11, 11, 14, 20]
    assert cv.get_n_splits() == 5


def test_walk_forward_exact_indices():
    # 3 test blocks after 2 training blocks: 5 blocks, A blocks of 4 rows, B blocks of 2.
    # Training labels must end before first test bar - 1.
    X = _two_symbols()
    expanding = WalkForward(n_splits=3, window="expanding", train_blocks=2, purge_bars=1,
                            embargo_bars=4, **ALL)
    assert _splits(expanding, X) == [
        ([0, 1, 2, 3, 4, 20, 21, 22], [8, 9, 10, 11, 24, 25]),
        ([*range(0, 9), *range(20, 25)], [12, 13, 14, 15, 26, 27]),
        ([*range(0, 13), *range(20, 27)], [16, 17, 18, 19, 28, 29]),
    ]
    assert expanding.report()["n_embargoed"].tolist() == [0, 0, 0]
    assert expanding.report()["n_purged"].tolist() == [4, 4, 4]
    rolling = WalkForward(n_splits=3, window="rolling", train_blocks=2, purge_bars=1,
                          embargo_bars=4, **ALL)
    assert _splits(rolling, X) == [
        ([0, 1, 2, 3, 4, 20, 21, 22], [8, 9, 10, 11, 24, 25]),
        ([4, 5, 6, 7, 8, 22, 23, 24], [12, 13, 14, 15, 26, 27]),
        ([8, 9, 10, 11, 12, 24, 25, 26], [16, 17, 18, 19, 28, 29]),
    ]


def test_walk_forward_test_size():
    # test_size 0.25 x 2 splits: blocks are the last half; expanding trains from row 0
    X = _two_symbols()
    cv = WalkForward(n_splits=2, test_size=0.25, purge_bars=0, embargo_bars=0, **ALL)
    assert _splits(cv, X) == [
        ([*range(0, 8), *range(20, 24)], [*range(10, 15), 25, 26]),
        ([*range(0, 13), *range(20, 26)], [*range(15, 20), 27, 28, 29]),
    ]


def test_cpcv_exact_indices_and_paths():
    # 2 symbols x 20 rows, labels of 2 bars, purge 1, embargo 2; 4 groups of 5 rows, 2 tested
    bar = np.r_[np.arange(20), np.arange(20)]
    X = pd.DataFrame({"symbol": ["A"] * 20 + ["B"] * 20, "bar_idx": bar, "exit_idx": bar + 2})
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=2, purge_bars=1, embargo_bars=2, **ALL)

    def both(rows):
        return [*rows, *(r + 20 for r in rows)]

    expected = [
        (both(range(14, 20)), both(range(0, 10))),  # (0, 1): 10..12 purged, 13 embargoed
        (both([19]), both([*range(0, 5), *range(10, 15)])),  # (0, 2)
        (both([9, 10, 11]), both([*range(0, 5), *range(15, 20)])),  # (0, 3)
        (both([0, 1, 19]), both(range(5, 15))),  # (1, 2)
        (both([0, 1]), both([*range(5, 10), *range(15, 20)])),  # (1, 3)
        (both(range(0, 7)), both(range(10, 20))),  # (2, 3)
    ]
    assert _splits(cv, X) == expected
    assert cv.report()["n_embargoed"].tolist() == [2, 2, 2, 2, 0, 0]
    assert cv.report()["n_purged"].tolist() == [6, 16, 12, 12, 16, 6]
    assert cv.test_groups() == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert cv.paths().tolist() == [[0, 0, 1, 2], [1, 3, 3, 4], [2, 4, 5, 5]]


@pytest.mark.parametrize(("n", "k"), [(6, 2), (5, 3), (8, 4), (4, 1)])
def test_cpcv_counts_and_paths(n, k):
    cv = CombinatorialPurgedCV(n_groups=n, n_test_groups=k)
    phi = k * comb(n, k) // n
    assert cv.get_n_splits() == comb(n, k) and cv.n_paths() == phi
    paths = cv.paths()
    assert paths.shape == (phi, n)
    combos = cv.test_groups()
    for g in range(n):  # every group is covered on every path, by a split that tests it
        assert all(g in combos[s] for s in paths[:, g])
        assert len(set(paths[:, g].tolist())) == phi  # by phi different splits
    assert np.bincount(paths.ravel(), minlength=len(combos)).tolist() == [k] * len(combos)


def test_cpcv_assemble_paths_puts_each_prediction_back():
    X = _two_symbols()
    cv = CombinatorialPurgedCV(n_groups=3, n_test_groups=2, purge_bars=0, embargo_bars=0, **ALL)
    splits = list(cv.split(X))
    # split s predicts 100*s + row position, so the source of every value is visible
    preds = [100.0 * s + te for s, (_, te) in enumerate(splits)]
    out = cv.assemble_paths(X, preds)
    group = cv.groups(X)
    assert out.shape == (2, 30)
    for j, row in enumerate(cv.paths()):
        for g, s in enumerate(row):
            rows = np.flatnonzero(group == g)
            assert out[j, rows].tolist() == (100.0 * s + rows).tolist()
    with pytest.raises(FactoryError, match="split 0 has .* test rows but 3 predictions"):
        cv.assemble_paths(X, [np.zeros(3)] * 3)


def test_held_out_test_block_never_enters_the_cv():
    # one symbol, 100 rows, labels of 3 bars: the evaluation rows 70..99 give 5 val rows to
    # the test block's gap (exit >= start - 2, or bar >= start - 5), and val = test = 12:
    # HoldoutSplit's test block is rows 88..99, it gives up rows 83..87; the CV gets 0..82
    bar = np.arange(100)
    X = pd.DataFrame({"symbol": "A", "bar_idx": bar, "exit_idx": bar + 3})
    names = HoldoutSplit(purge_bars=2, embargo_bars=5).assign(X)
    assert np.flatnonzero(names == "test").tolist() == list(range(88, 100))
    for cv in (PurgedKFold(n_splits=4, purge_bars=2, embargo_bars=5),
               WalkForward(n_splits=2, purge_bars=2, embargo_bars=5),
               CombinatorialPurgedCV(n_groups=4, purge_bars=2, embargo_bars=5)):
        seen = np.unique(np.concatenate([np.r_[tr, te] for tr, te in cv.split(X)]))
        assert seen.max() == 82
        assert cv.report()["n_held_out"].iloc[0] == 12
        assert cv.report()["n_holdout_gap"].iloc[0] == 5
        assert (cv.assign(X) == names).all()  # Phase 1 gets the holdout unchanged
    tests = np.concatenate([te for _, te in PurgedKFold(4, 2, 5).split(X)])
    assert tests.tolist() == list(range(83))  # the folds partition exactly the CV rows


def test_row_order_of_x_does_not_matter():
    X = _two_symbols()
    perm = np.random.default_rng(0).permutation(len(X))
    cv = PurgedKFold(n_splits=3, purge_bars=1, embargo_bars=2, **ALL)
    for (tr, te), (tr2, te2) in zip(cv.split(X), cv.split(X.iloc[perm]), strict=True):
        assert sorted(perm[tr2].tolist()) == tr.tolist()
        assert sorted(perm[te2].tolist()) == te.tolist()


def test_bad_input_is_named():
    X = _two_symbols()
    with pytest.raises(FactoryError, match="no column `exit_idx`"):
        next(PurgedKFold().split(X.drop(columns="exit_idx")))
    bad = X.copy()
    bad.loc[5, "exit_idx"] = 3
    with pytest.raises(FactoryError, match="row 5 has exit_idx 3 < bar_idx 5"):
        next(PurgedKFold(**ALL).split(bad))
    with pytest.raises(FactoryError, match="symbol B has 10 CV rows, fewer than the 12"):
        next(PurgedKFold(n_splits=12, **ALL).split(X))
    empty = r"split 0 \(test groups \(0, 1, 2\)\) has an empty train set .*cv\.embargo_bars"
    with pytest.raises(FactoryError, match=empty):
        list(CombinatorialPurgedCV(4, 3, purge_bars=5, embargo_bars=50, **ALL).split(X))
    with pytest.raises(FactoryError, match="cv.train/val/test"):
        PurgedKFold(train=0.7, val=0.2, test=0.2).get_n_splits()
    with pytest.raises(FactoryError, match="cv.window"):
        WalkForward(window="sliding").get_n_splits()
    with pytest.raises(FactoryError, match="cv.test_size"):
        WalkForward(n_splits=5, test_size=0.25).get_n_splits()
    with pytest.raises(FactoryError, match="cv.n_test_groups"):
        CombinatorialPurgedCV(n_groups=4, n_test_groups=4).get_n_splits()
    with pytest.raises(FactoryError, match=r"call split\(X\) first"):
        PurgedKFold().report()


def _oracle(X, test, candidates, purge, embargo):
    """Brute force: candidates minus rows overlapping any test row's widened label, or
    starting within ``embargo`` bars after any test row's label end (same symbol)."""
    sym, b, e = X["symbol"].to_numpy(), X["bar_idx"].to_numpy(), X["exit_idx"].to_numpy()
    keep = []
    for i in np.flatnonzero(candidates):
        same = test & (sym == sym[i])
        overlap = (b[i] <= e[same] + purge) & (e[i] >= b[same] - purge)
        after = (b[i] > e[same]) & (b[i] <= e[same] + embargo)
        if not (overlap.any() or after.any()):
            keep.append(i)
    return keep


@st.composite
def _frames(draw):
    parts = []
    for s in range(draw(st.integers(1, 3))):
        n = draw(st.integers(24, 60))
        steps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
        spans = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
        bar = np.cumsum(steps)
        parts.append(pd.DataFrame({"symbol": f"S{s}", "bar_idx": bar,
                                   "exit_idx": bar + np.asarray(spans)}))
    return pd.concat(parts, ignore_index=True)


@settings(max_examples=60, deadline=None)
@given(X=_frames(), purge=st.integers(0, 4), embargo=st.integers(0, 6),
       kind=st.sampled_from(["kfold", "cpcv", "expanding", "rolling"]), n=st.integers(2, 4))
def test_purge_and_embargo_match_brute_force(X, purge, embargo, kind, n):
    if kind == "kfold":
        cv = PurgedKFold(n, purge, embargo, **ALL)
    elif kind == "cpcv":
        cv = CombinatorialPurgedCV(n + 1, n // 2, purge, embargo, **ALL)
    else:
        cv = WalkForward(n, kind, train_blocks=2, purge_bars=purge, embargo_bars=embargo, **ALL)
    try:
        splits = list(cv.split(X))
    except FactoryError as err:
        assume("empty train set" not in str(err))
        raise
    sym, b = X["symbol"].to_numpy(), X["bar_idx"].to_numpy()
    for (tr, te), rep in zip(splits, cv.report().to_dict("records"), strict=True):
        assert not set(tr.tolist()) & set(te.tolist())
        test = np.zeros(len(X), bool)
        test[te] = True
        if kind in ("kfold", "cpcv"):
            candidates = ~test
        else:  # walk-forward: training strictly before the test block of each symbol
            first_test = pd.Series(b[te]).groupby(sym[te]).min()
            assert set(first_test.index) == set(sym)
            before = b < first_test.reindex(sym).to_numpy()
            assert before[tr].all()
            candidates = before
            if kind == "rolling":  # window start not recomputed here: check no violation
                candidates = np.zeros(len(X), bool)
                candidates[tr] = True
        assert tr.tolist() == _oracle(X, test, candidates, purge, embargo)
        if kind in ("kfold", "cpcv"):
            assert rep["n_train"] + rep["n_test"] + rep["n_purged"] + rep["n_embargoed"] \
                == len(X)
