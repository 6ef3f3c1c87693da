"""Walk-forward validation: fixed-size test blocks stepping forward, training strictly before.

Each symbol's CV rows (time order) are measured in *test blocks* of ``test_size`` of its rows
(default ``1 / (n_splits + train_blocks)``). The ``n_splits`` test blocks are the last
``n_splits`` blocks; split ``i`` tests block ``i`` of them and trains on

* ``window="expanding"``: every row before the test block (from the symbol's first row);
* ``window="rolling"``: the ``train_blocks`` blocks immediately before it (fixed length);

minus the rows whose label interval overlaps the test block widened by ``purge_bars``, so
every training label ends before ``first test bar - purge_bars``. Training never lies after
the test block, so the embargo (after a test block, :mod:`factory.splits.purged`) removes
nothing here; ``embargo_bars`` still guards the held-out final test block (``test``) and the
Phase-1 holdout (:meth:`assign`). Edges are exact fractions of each symbol's row count
(``floor(n * fraction)``), so splits line up across symbols the way k-fold folds do.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from factory.errors import FactoryError
from factory.splits.purged import Layout, PurgedSplitter

WINDOWS = ("expanding", "rolling")


class WalkForward(PurgedSplitter):
    """``n_splits`` forward-stepping test blocks, expanding or rolling training windows."""

    def __init__(self, n_splits: int = 5, window: str = "expanding", train_blocks: int = 5,
                 test_size: float | None = None, purge_bars: int = 60,
                 embargo_bars: int = 1440, train: float = 0.70, val: float = 0.15,
                 test: float = 0.15) -> None:
        self.n_splits = n_splits
        self.window = window
        self.train_blocks = train_blocks
        self.test_size = test_size
        self.purge_bars = purge_bars
        self.embargo_bars = embargo_bars
        self.train = train
        self.val = val
        self.test = test

    def _block(self) -> Fraction:
        if self.test_size is None:
            return Fraction(1, int(self.n_splits) + int(self.train_blocks))
        return Fraction(self.test_size).limit_denominator(10**6)

    def _check(self) -> None:
        self._check_common()
        for key in ("n_splits", "train_blocks"):
            value = getattr(self, key)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise FactoryError(f"`cv.{key}` must be an integer >= 1, got {value!r}")
        if self.window not in WINDOWS:
            raise FactoryError(f"`cv.window` must be one of {WINDOWS}, got {self.window!r}")
        if self.test_size is not None and not 0 < self.test_size < 1:
            raise FactoryError(f"`cv.test_size` must be in (0, 1) or null, got "
                               f"{self.test_size!r}")
        f = self._block()
        used = (self.n_splits + (self.train_blocks if self.window == "rolling" else 0)) * f
        if self.n_splits * f >= 1 or used > 1:
            raise FactoryError(
                f"`cv.test_size` {self.test_size} x `cv.n_splits` {self.n_splits} (plus "
                f"`cv.train_blocks` {self.train_blocks} for rolling) leaves no room for the "
                "first training window; lower test_size or n_splits")

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of test blocks (``n_splits``)."""
        self._check()
        return int(self.n_splits)

    def _plan(self, lay: Layout) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
        f, n_splits = self._block(), int(self.n_splits)
        self._require_rows(lay, int(np.ceil(1 / f)))
        size, rank = lay.size, lay.rank

        def edge(frac: Fraction) -> np.ndarray:
            return (size * frac.numerator) // frac.denominator

        for i in range(n_splits):
            start = 1 - (n_splits - i) * f
            lo = edge(start - int(self.train_blocks) * f) if self.window == "rolling" else 0
            a, b = edge(start), edge(start + f)
            test = lay.cv & (rank >= a) & (rank < b)
            candidates = lay.cv & (rank >= lo) & (rank < a)
            yield test, candidates, {"test_groups": (i,)}
