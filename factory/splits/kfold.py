"""Purged k-fold: contiguous chronological folds per symbol (López de Prado, AFML 7.4).

Each symbol's CV rows (time order) are cut into ``n_splits`` contiguous blocks of equal row
count (block ``k`` = ranks ``floor(n*k/K) .. floor(n*(k+1)/K) - 1``). Fold ``k`` tests the
``k``-th block of *every* symbol at once, so a fold covers the same stretch of calendar time
on all symbols when they span the same window with similar bar density (Phase 1 loads every
symbol over the same ``data`` window; warm-up and session gaps shift the edges by at most a
few bars' worth of rows). The folds are not aligned by timestamp: symbols are never purged
against each other, so cross-symbol alignment is a matter of equal shares, documented
rather than enforced. Training = all other CV rows minus the purged and embargoed ones
(:mod:`factory.splits.purged`: purge both sides, embargo after the test block only).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.splits.purged import Layout, PurgedSplitter


def block_of(lay: Layout, n_blocks: int) -> np.ndarray:
    """Block number of each CV row (equal row counts per symbol, in time order); -1 if held."""
    out = np.full(len(lay.rank), -1, np.int64)
    cv = lay.cv
    # rank r is in block k iff floor(n*k/K) <= r < floor(n*(k+1)/K) iff k = (K*(r+1)-1)//n
    out[cv] = (n_blocks * (lay.rank[cv] + 1) - 1) // lay.size[cv]
    return out


class PurgedKFold(PurgedSplitter):
    """K contiguous folds per symbol, each tested once; training purged and embargoed.

    ``train``/``val``/``test`` are the Phase-1 holdout fractions (``conf/cv/*.yaml`` share
    them; ``${cv.train}`` feeds the barrier search). ``test > 0`` keeps the final test block
    (and its purge/embargo zone) out of every fold; the folds partition the rest.
    """

    def __init__(self, n_splits: int = 5, purge_bars: int = 60, embargo_bars: int = 1440,
                 train: float = 0.70, val: float = 0.15, test: float = 0.15) -> None:
        self.n_splits = n_splits
        self.purge_bars = purge_bars
        self.embargo_bars = embargo_bars
        self.train = train
        self.val = val
        self.test = test

    def _check(self) -> None:
        self._check_common()
        if isinstance(self.n_splits, bool) or int(self.n_splits) != self.n_splits \
                or self.n_splits < 2:
            raise FactoryError(f"`cv.n_splits` must be an integer >= 2, got {self.n_splits!r}")

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds (``n_splits``)."""
        self._check()
        return int(self.n_splits)

    def groups(self, X: pd.DataFrame) -> np.ndarray:
        """Fold number per row of ``X`` (-1 for rows held out with the final test block)."""
        lay = self._layout(X)
        self._require_rows(lay, int(self.n_splits))
        return block_of(lay, int(self.n_splits))

    def _plan(self, lay: Layout) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
        k_total = int(self.n_splits)
        self._require_rows(lay, k_total)
        fold = block_of(lay, k_total)
        for k in range(k_total):
            test = fold == k
            yield test, lay.cv & ~test, {"test_groups": (k,)}
