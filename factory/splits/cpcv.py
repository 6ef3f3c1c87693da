"""Combinatorial purged cross-validation (López de Prado, AFML ch. 12).

Each symbol's CV rows are cut into ``n_groups`` contiguous blocks of equal row count, exactly
as :class:`~factory.splits.kfold.PurgedKFold` cuts its folds (so group ``g`` covers the same
stretch of time on every symbol). Every choice of ``n_test_groups`` groups is one split:
``C(N, k)`` splits, tested on those groups and trained on the others minus purged and
embargoed rows (purge both sides of each test block, embargo after it; see
:mod:`factory.splits.purged`).

Backtest paths: each group is tested in ``C(N-1, k-1)`` splits, so the out-of-sample
predictions can be reassembled into ``phi = k/N * C(N, k) = C(N-1, k-1)`` complete paths,
each covering every group exactly once. Path ``j`` takes, for group ``g``, the ``j``-th split
(in lexicographic order of the test-group combinations) that tests ``g``, as in AFML ch. 12.
Each path is one backtest over the whole CV period, giving a distribution of
performance instead of a single number (feed it to
:func:`factory.evaluation.overfitting.probability_of_backtest_overfitting`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.splits.kfold import block_of
from factory.splits.purged import Layout, PurgedSplitter


class CombinatorialPurgedCV(PurgedSplitter):
    """All ``C(n_groups, n_test_groups)`` purged splits and their ``phi`` backtest paths."""

    def __init__(self, n_groups: int = 6, n_test_groups: int = 2, purge_bars: int = 60,
                 embargo_bars: int = 1440, train: float = 0.70, val: float = 0.15,
                 test: float = 0.15) -> None:
        self.n_groups = n_groups
        self.n_test_groups = n_test_groups
        self.purge_bars = purge_bars
        self.embargo_bars = embargo_bars
        self.train = train
        self.val = val
        self.test = test

    def _check(self) -> None:
        self._check_common()
        n, k = self.n_groups, self.n_test_groups
        ints = all(not isinstance(v, bool) and int(v) == v for v in (n, k))
        if not ints or n < 2 or not 1 <= k < n:
            raise FactoryError(f"`cv.n_groups` must be an integer >= 2 and `cv.n_test_groups` "
                               f"an integer in [1, n_groups), got {n!r} and {k!r}")

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """``C(n_groups, n_test_groups)``."""
        self._check()
        return comb(int(self.n_groups), int(self.n_test_groups))

    def test_groups(self) -> list[tuple[int, ...]]:
        """Test groups of each split, in split order (lexicographic combinations)."""
        self._check()
        return list(combinations(range(int(self.n_groups)), int(self.n_test_groups)))

    def n_paths(self) -> int:
        """``phi = k/N * C(N, k) = C(N-1, k-1)`` backtest paths."""
        self._check()
        return comb(int(self.n_groups) - 1, int(self.n_test_groups) - 1)

    def paths(self) -> np.ndarray:
        """``(n_paths, n_groups)`` split numbers: ``paths()[j, g]`` is the split whose test
        predictions cover group ``g`` on path ``j``. Each split appears ``k`` times in all."""
        combos = np.array(self.test_groups())
        out = np.empty((self.n_paths(), int(self.n_groups)), np.int64)
        for g in range(int(self.n_groups)):
            out[:, g] = np.flatnonzero((combos == g).any(axis=1))  # lexicographic order
        return out

    def groups(self, X: pd.DataFrame) -> np.ndarray:
        """Group number per row of ``X`` (-1 for rows held out with the final test block)."""
        lay = self._layout(X)
        self._require_rows(lay, int(self.n_groups))
        return block_of(lay, int(self.n_groups))

    def assemble_paths(self, X: pd.DataFrame, predictions: list[np.ndarray]) -> np.ndarray:
        """Per-path out-of-sample predictions over all rows of ``X``.

        ``predictions[s]`` are split ``s``'s predictions aligned with its ``test_idx`` (shape
        ``(n_test, ...)``). Returns ``(n_paths, len(X), ...)`` floats, NaN on held-out rows.
        """
        group = self.groups(X)
        combos = self.test_groups()
        if len(predictions) != len(combos):
            raise FactoryError(f"assemble_paths: got {len(predictions)} prediction arrays for "
                               f"{len(combos)} splits; pass one per split, in split order")
        tests = [np.flatnonzero(np.isin(group, c)) for c in combos]
        for s, (pred, idx) in enumerate(zip(predictions, tests, strict=True)):
            if len(pred) != len(idx):
                raise FactoryError(f"assemble_paths: split {s} has {len(idx)} test rows but "
                                   f"{len(pred)} predictions; align them with its test_idx")
        tail = np.asarray(predictions[0]).shape[1:]
        out = np.full((self.n_paths(), len(X), *tail), np.nan)
        for j, row in enumerate(self.paths()):
            for g, s in enumerate(row):
                rows = np.flatnonzero(group == g)
                out[j, rows] = np.asarray(predictions[s])[np.searchsorted(tests[s], rows)]
        return out

    def _plan(self, lay: Layout) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
        self._require_rows(lay, int(self.n_groups))
        group = block_of(lay, int(self.n_groups))
        for combo in self.test_groups():
            test = np.isin(group, combo)
            yield test, lay.cv & ~test, {"test_groups": combo}
