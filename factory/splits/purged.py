"""Purge and embargo shared by the cross-validation splitters (k-fold, walk-forward, CPCV).

Rows are the Phase-1 ``meta``: each row is a label on one symbol whose information interval
is ``[bar_idx, exit_idx]`` in bar positions of that symbol. A splitter says which rows are
tested and which are *candidates* for training; this module removes the candidates that
would leak, per symbol (symbols never purge each other):

* **purge**: a candidate is removed when its label interval ``[t0, t1]`` overlaps a test
  block's interval ``[first test bar, last test label end]`` widened by ``purge_bars`` on
  both sides. Overlap with either side is leakage: the label was computed from prices that
  the test rows are scored on.
* **embargo** (López de Prado, AFML 7.4.2): a candidate that *starts* within
  ``embargo_bars`` bars **after** a test block's last label end is removed, because its
  features (look-back windows) are built from the test block's prices. There is **no
  embargo before a test block** in the CV splitters: a row that precedes the test block and
  whose label ends before it (less ``purge_bars``) knows only the past of the test block,
  exactly like a live model trained up to that time. (Walk-forward never trains after its
  test block, so its embargo count is always 0.)

Held-out final test block: with ``test > 0`` each symbol's final test block, cut exactly
where :class:`~factory.splits.holdout.HoldoutSplit` cuts it (:func:`holdout_blocks`: val
and test the same size after the gaps), never enters any CV split, and the rows before it that the
holdout gives up to it (label end within ``purge_bars`` of the block, or start within
``embargo_bars`` before it, the holdout's own rule) are excluded too. The CV runs on what is
left: Phase-1 train + val + the train/val gap rows. Alternatively pass a restricted ``X`` and
``test=0``; do not do both (the cut would be applied twice).

Everything is vectorised over rows: bar positions are offset per symbol into one global key
(``code * stride + bar``, stride > any label span plus purge and embargo), so one
``searchsorted`` over the sorted test-block bounds handles all symbols at once. Removed rows
are counted in ``report_`` / :meth:`PurgedSplitter.report`, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.splits.holdout import GAP_TEST, TEST, HoldoutSplit, holdout_blocks

REQUIRED = ("symbol", "bar_idx", "exit_idx")


@dataclass
class Layout:
    """Per-row arrays in ``X``'s original row order (keys offset per symbol)."""

    code: np.ndarray  # symbol code per row
    symbols: np.ndarray  # symbol name per code
    t0: np.ndarray  # global key of the first bar of the label
    t1: np.ndarray  # global key of the label end
    cv: np.ndarray  # bool: the row takes part in the CV (not held out)
    rank: np.ndarray  # position among its symbol's CV rows in time order (-1 if not CV)
    size: np.ndarray  # number of CV rows of the row's symbol
    order: np.ndarray  # CV row positions sorted by (symbol, bar_idx)
    held_out: int  # rows of the final test block
    holdout_gap: int  # rows before it given up to its purge and embargo


def _int_column(X: pd.DataFrame, name: str) -> np.ndarray:
    values = X[name].to_numpy()
    if not np.issubdtype(values.dtype, np.number) or pd.isna(values).any():
        raise FactoryError(f"cv: column `{name}` must be numeric bar positions without NaN, "
                           f"got dtype {values.dtype}; pass the Phase-1 `meta` frame")
    out = values.astype(np.int64)
    if (out != values).any() or (out < 0).any():
        raise FactoryError(f"cv: column `{name}` must hold non-negative integer bar positions; "
                           "pass the Phase-1 `meta` frame")
    return out


def layout(X: pd.DataFrame, fractions: tuple[float, float, float], purge: int,
           embargo: int) -> Layout:
    """Validate ``X`` and compute the keys, the held-out block and the per-symbol ranks
    (``fractions``: the Phase-1 ``(train, val, test)`` cut; ``test == 0``: nothing held)."""
    if not isinstance(X, pd.DataFrame):
        raise FactoryError(f"cv: X must be a DataFrame with columns {list(REQUIRED)} (the "
                           f"Phase-1 `meta`), got {type(X).__name__}")
    for name in REQUIRED:
        if name not in X.columns:
            raise FactoryError(f"cv: X has no column `{name}`; split on the Phase-1 `meta` "
                               f"frame (columns {list(REQUIRED)}), not on the features")
    if len(X) == 0:
        raise FactoryError("cv: X has no rows; there is nothing to split")
    bar, end = _int_column(X, "bar_idx"), _int_column(X, "exit_idx")
    if (end < bar).any():
        row = int(np.flatnonzero(end < bar)[0])
        raise FactoryError(f"cv: row {row} has exit_idx {end[row]} < bar_idx {bar[row]}; a "
                           "label must end at or after its bar")
    code, symbols = pd.factorize(X["symbol"], sort=True)
    if (code < 0).any():
        raise FactoryError(f"cv: column `symbol` is missing on row {int(np.argmin(code))}; "
                           "every row needs its symbol")
    code = code.astype(np.int64)
    stride = int(end.max()) + purge + embargo + 2
    offset = code * stride
    t0, t1 = offset + bar, offset + end
    srt = np.argsort(t0, kind="stable")  # by (symbol, bar_idx); fast when already sorted
    code_s = code[srt]
    counts = np.bincount(code, minlength=len(symbols))
    first = np.r_[0, np.cumsum(counts)[:-1]]
    cv_sorted = np.ones(len(X), bool)
    held_out = holdout_gap = 0
    if fractions[2] > 0:  # the holdout's own blocks, symbol by symbol (a handful)
        blocks = np.empty(len(X), np.int8)
        for c in range(len(symbols)):
            part = slice(first[c], first[c] + counts[c])
            blocks[part] = holdout_blocks(bar[srt[part]], end[srt[part]], fractions, purge,
                                          embargo)
        held, gap = blocks == TEST, blocks == GAP_TEST
        cv_sorted = ~held & ~gap
        held_out, holdout_gap = int(held.sum()), int(gap.sum())
    cum = np.cumsum(cv_sorted)
    before = np.r_[0, cum][first]  # CV rows of earlier symbols
    size = np.bincount(code_s[cv_sorted], minlength=len(symbols))
    rank = np.full(len(X), -1, np.int64)
    cv = np.zeros(len(X), bool)
    cv[srt] = cv_sorted
    rank[srt[cv_sorted]] = (cum - 1 - before[code_s])[cv_sorted]
    return Layout(code=code, symbols=np.asarray(symbols, dtype=object), t0=t0, t1=t1, cv=cv,
                  rank=rank, size=size[code], order=srt[cv_sorted], held_out=held_out,
                  holdout_gap=holdout_gap)


def blocks(lay: Layout, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) keys of each maximal run of consecutive test rows of one symbol."""
    o = lay.order
    tm, c = test[o], lay.code[o]
    prev_tm = np.r_[False, tm[:-1]]
    new_sym = np.r_[True, c[1:] != c[:-1]]
    starts = tm & (~prev_tm | new_sym)
    if not tm.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    first_of_run = np.flatnonzero(starts[tm])
    lo = lay.t0[o][tm][first_of_run]  # t0 ascends within a symbol
    hi = np.maximum.reduceat(lay.t1[o][tm], first_of_run)
    return lo, hi


def _covered(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each interval ``[a, b]`` overlaps any ``[lo_j, hi_j]`` (lo sorted ascending)."""
    if len(lo) == 0:
        return np.zeros(len(a), bool)
    j = np.searchsorted(lo, b, side="right") - 1  # last interval starting at or before b
    reach = np.maximum.accumulate(hi)  # furthest end among intervals 0..j
    return (j >= 0) & (reach[np.maximum(j, 0)] >= a)


def purge_embargo(lay: Layout, test: np.ndarray, candidates: np.ndarray, purge: int,
                  embargo: int) -> tuple[np.ndarray, int, int]:
    """Training mask (candidates minus purged and embargoed rows) and the two counts."""
    lo, hi = blocks(lay, test)
    cand = np.flatnonzero(candidates & ~test)
    t0, t1 = lay.t0[cand], lay.t1[cand]
    purged = _covered(lo - purge, hi + purge, t0, t1)
    embargoed = np.zeros(len(cand), bool)
    if embargo > 0 and len(hi):
        zs = np.argsort(hi, kind="stable")
        start, stop = hi[zs] + 1, hi[zs] + embargo
        embargoed = ~purged & _covered(start, stop, t0, t0)
    train = np.zeros(len(test), bool)
    train[cand[~purged & ~embargoed]] = True
    return train, int(purged.sum()), int(embargoed.sum())


class PurgedSplitter:
    """Common parameters, validation, Phase-1 holdout and the per-split report.

    Subclasses implement ``_plan(layout)``, yielding ``(test_mask, candidate_mask, info)``
    per split, and ``get_n_splits``. ``split`` applies purge and embargo to each plan.
    """

    train: float
    val: float
    test: float
    purge_bars: int
    embargo_bars: int

    def _check_common(self) -> None:
        fractions = (self.train, self.val, self.test)
        if self.train <= 0 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
            raise FactoryError(f"`cv.train/val/test` must be >= 0 (train > 0) and sum to 1, "
                               f"got {fractions}")
        for key in ("purge_bars", "embargo_bars"):
            value = getattr(self, key)
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise FactoryError(f"`cv.{key}` must be an integer >= 0, got {value!r}")

    def _check(self) -> None:
        self._check_common()

    def _layout(self, X: pd.DataFrame) -> Layout:
        self._check()
        return layout(X, (self.train, self.val, self.test), int(self.purge_bars),
                      int(self.embargo_bars))

    def _plan(self, lay: Layout) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
        raise NotImplementedError

    def split(self, X: pd.DataFrame, y=None, groups=None) -> Iterator[tuple[np.ndarray, ...]]:
        """Yield ``(train_idx, test_idx)``: ascending row positions into ``X``.

        ``y`` and ``groups`` are ignored (scikit-learn signature; symbols come from ``X``).
        Counts per split accumulate in ``report_`` as the splits are drawn.
        """
        lay = self._layout(X)
        self.report_: list[dict] = []
        for i, (test, candidates, info) in enumerate(self._plan(lay)):
            train, n_purged, n_embargoed = purge_embargo(
                lay, test, candidates, int(self.purge_bars), int(self.embargo_bars))
            if not test.any() or not train.any():
                empty = "test" if not test.any() else "train"
                what = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info.items())
                raise FactoryError(
                    f"cv split {i} ({what}) has an empty {empty} set after purge "
                    f"({self.purge_bars} bars) and embargo ({self.embargo_bars} bars) on "
                    f"{int(lay.cv.sum())} CV rows; add data (e.g. `data.days=240`), use fewer "
                    "splits, or lower `cv.embargo_bars` / `cv.purge_bars`")
            self.report_.append({"split": i, **info, "n_train": int(train.sum()),
                                 "n_test": int(test.sum()), "n_purged": n_purged,
                                 "n_embargoed": n_embargoed, "n_held_out": lay.held_out,
                                 "n_holdout_gap": lay.holdout_gap})
            yield np.flatnonzero(train), np.flatnonzero(test)

    def report(self) -> pd.DataFrame:
        """One row per split drawn so far: train/test sizes and rows purged/embargoed/held."""
        if not hasattr(self, "report_"):
            raise FactoryError(f"{type(self).__name__}.report(): call split(X) first")
        return pd.DataFrame(self.report_)

    def _require_rows(self, lay: Layout, n_blocks: int) -> None:
        small = lay.size < n_blocks
        if small.any():
            row = int(np.flatnonzero(small)[0])
            raise FactoryError(
                f"cv: symbol {lay.symbols[lay.code[row]]} has {int(lay.size[row])} CV rows, "
                f"fewer than the {n_blocks} blocks {type(self).__name__} cuts it into; add "
                "data or use fewer splits/groups")

    def assign(self, meta: pd.DataFrame) -> np.ndarray:
        """Phase-1 split names (train/val/test/gap), exactly as ``HoldoutSplit`` assigns them.

        Phase 1 still needs a validation block (early stopping) and a final test block; a
        CV config composes with it unchanged, and the CV then runs inside train + val.
        """
        return HoldoutSplit(self.train, self.val, self.test, self.purge_bars,
                            self.embargo_bars).assign(meta)
