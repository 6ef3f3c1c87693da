"""Chronological train/val/test split, purged and embargoed by label end times, per symbol.

For each symbol, labelled rows (sorted by time) are cut into a training block, a validation
block and a final test block. At each boundary the *earlier* block gives up rows so that no
label of it can see the later block:

* **purge**: rows whose label ends (exit bar) within ``purge_bars`` bars of the later
  block's first bar, or after it, are removed (label overlap);
* **embargo**: rows that start within the last ``embargo_bars`` bars before the later
  block are removed too (serial correlation of features and returns).

The training block is the first ``floor(train x n)`` of the ``n`` labelled rows, less its
gap, as it always was (so ``labeling.train_fraction=${cv.train}``, the bars a barrier
search may read, still ends before the first validation bar). The rest is the evaluation
part: the validation rows that the test block purges or embargoes go to the gap first, and
what is left is shared between validation and test in the ratio ``val : test``, so the two
have the same size when their fractions are equal. (The embargo used to come out of
validation alone: 186 validation rows against 1,627 test rows on 60 days.) The test block is
the last rows; a spare row left by the floors goes to the gap. The gap depends on where the
test block starts, so the sizes come from a short fixed-point iteration (deterministic).
Evaluation blocks keep all their rows. Removed rows get split ``"gap"`` and are counted in
the report, never silently dropped.

:func:`require_rows` runs in Phase 1 before the split: a symbol too short for the feature
warm-up, its labels and the split fails with the bar counts each needs and what to change.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from factory.data.bars import BarSet
from factory.data.resample import format_timeframe
from factory.errors import FactoryError

SPLITS = ("train", "val", "test")
# Block codes of :func:`holdout_blocks`: the splits, then the gap rows given up to the
# validation block (before it) and to the test block (before it).
TRAIN, VAL, TEST, GAP_VAL, GAP_TEST = 0, 1, 2, 3, 4
NAMES = np.array(["train", "val", "test", "gap", "gap"], dtype=object)


def _gap_before(bar_idx: np.ndarray, exit_idx: np.ndarray, start: int, purge: int,
                embargo: int) -> np.ndarray:
    """Mask over rows ``< start`` that a block starting at row ``start`` purges or embargoes."""
    first_bar = bar_idx[start]
    return (exit_idx[:start] >= first_bar - purge) | (bar_idx[:start] >= first_bar - embargo)


def holdout_blocks(bar_idx: np.ndarray, exit_idx: np.ndarray,
                   fractions: tuple[float, float, float], purge: int,
                   embargo: int) -> np.ndarray:
    """Block code per row of one symbol (rows sorted by ``bar_idx``): :data:`TRAIN`,
    :data:`VAL`, :data:`TEST`, :data:`GAP_VAL` or :data:`GAP_TEST` (see the module
    docstring). A zero fraction has no block (and no gap before it)."""
    n = len(bar_idx)
    train, val, test = fractions
    codes = np.full(n, TRAIN, np.int8)
    start = int(math.floor(train * n))  # the first row after the training block
    if start >= n or val + test <= 0:
        return codes
    if val > 0 and test > 0:
        end, n_val = _evaluation_cut(bar_idx, exit_idx, start, val / (val + test), purge,
                                     embargo)
        codes[end:] = TEST
        if 0 < end < n:
            codes[:end][_gap_before(bar_idx, exit_idx, end, purge, embargo)] = GAP_TEST
        free = start + np.flatnonzero(codes[start:end] == TRAIN)
        spare = max(len(free) - n_val, 0)
        codes[free[spare:]] = VAL
        codes[free[:spare]] = GAP_VAL  # spare rows (floors): val = test exactly
        first = int(free[spare]) if spare < len(free) else end
    else:  # one evaluation block (a k-fold cut without validation, or without test)
        codes[start:] = VAL if val > 0 else TEST
        first = start
    if 0 < first < n:
        gap = _gap_before(bar_idx, exit_idx, first, purge, embargo) & (codes[:first] == TRAIN)
        codes[:first][gap] = GAP_VAL if val > 0 else GAP_TEST
    return codes


def _evaluation_cut(bar_idx: np.ndarray, exit_idx: np.ndarray, start: int, val_share: float,
                    purge: int, embargo: int) -> tuple[int, int]:
    """(first test row, validation rows): rows ``start..n`` less the validation rows that the
    test block purges or embargoes, shared ``val_share`` : ``1 - val_share`` (floors; a spare
    row goes to the gap). The gap depends on where the test block starts, so the sizes come
    from a short fixed-point iteration (deterministic, two or three steps)."""
    n = len(bar_idx)
    gap, end, n_val = 0, n, 0
    for _ in range(12):  # the cap only guards an oscillation on tiny inputs
        room = max(n - start - gap, 0)
        n_test = int(math.floor(room * (1.0 - val_share) + 1e-9))
        n_val = int(math.floor(room * val_share + 1e-9))
        end = n - n_test
        if n_test == 0 or end <= start:
            return max(end, start), n_val  # too few rows: the caller names the empty split
        found = int(_gap_before(bar_idx, exit_idx, end, purge, embargo)[start:].sum())
        if found == gap:
            break
        gap = found
    return end, n_val


class HoldoutSplit:
    """70/15/15 chronological split with purge and embargo (``conf/cv/holdout.yaml``)."""

    def __init__(
        self,
        train: float = 0.70,
        val: float = 0.15,
        test: float = 0.15,
        purge_bars: int = 60,
        embargo_bars: int = 1440,
    ) -> None:
        fractions = (train, val, test)
        if min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
            raise FactoryError(
                f"`cv.train/val/test` must be positive and sum to 1, got {fractions} (e.g. "
                "`cv.train=0.7 cv.val=0.15 cv.test=0.15`)"
            )
        for key, value, example in (("purge_bars", purge_bars, 60),
                                    ("embargo_bars", embargo_bars, 1440)):
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise FactoryError(f"`cv.{key}` must be an int >= 0, got {value!r} (e.g. "
                                   f"`cv.{key}={example}`)")
        self.fractions = fractions
        self.purge_bars = int(purge_bars)
        self.embargo_bars = int(embargo_bars)

    def assign_symbol(self, bar_idx: np.ndarray, exit_idx: np.ndarray) -> np.ndarray:
        """Split names for one symbol's rows (``bar_idx`` sorted ascending)."""
        codes = holdout_blocks(np.asarray(bar_idx), np.asarray(exit_idx), self.fractions,
                               self.purge_bars, self.embargo_bars)
        return NAMES[codes]

    def assign(self, meta: pd.DataFrame) -> np.ndarray:
        """Split name per row of ``meta`` (columns ``symbol``, ``bar_idx``, ``exit_idx``)."""
        out = np.empty(len(meta), dtype=object)
        for symbol, rows in meta.groupby("symbol", sort=True).indices.items():
            order = rows[np.argsort(meta["bar_idx"].to_numpy()[rows], kind="stable")]
            names = self.assign_symbol(
                meta["bar_idx"].to_numpy()[order], meta["exit_idx"].to_numpy()[order]
            )
            for split in SPLITS:
                if not (names == split).any():
                    raise FactoryError(
                        f"split '{split}' for symbol {symbol} is empty after purge "
                        f"({self.purge_bars} bars) and embargo ({self.embargo_bars} bars): "
                        f"only {len(rows)} labelled rows, and the two gaps take "
                        f"{int((names == 'gap').sum())}; add data (e.g. `data.days=240`) or "
                        f"lower `cv.embargo_bars` / `cv.purge_bars`"
                    )
            out[order] = names
        return out


def split_fractions(split) -> tuple[float, float, float]:
    """(train, val, test) of a holdout or of a k-fold splitter's Phase-1 cut."""
    if hasattr(split, "fractions"):
        return tuple(float(f) for f in split.fractions)
    return float(split.train), float(split.val), float(split.test)


def require_rows(report: dict, split, horizon: int, barset: BarSet, feature_set: str) -> None:
    """Fail before the split when a symbol has too few labelled rows for it.

    ``report`` is Phase 1's per-symbol report (``bars``, ``warmup_bars``,
    ``unlabelled_tail``, ``rows``); ``barset`` gives the timeframe, the session length and
    the source (the file of each symbol, named in the message). A boundary gives up about
    ``max(embargo_bars, purge_bars + horizon)`` rows (one row per bar); each split then needs
    at least one row of its fraction of what is left. The message says how many bars the
    warm-up, the labels and the split need, and what to change.
    """
    purge, embargo = int(split.purge_bars), int(split.embargo_bars)
    fractions = split_fractions(split)
    boundaries = sum(1 for f in fractions[1:] if f > 0)
    gap = max(embargo, purge + int(horizon))
    smallest = min(f for f in fractions if f > 0)
    need_rows = boundaries * gap + math.ceil(1.0 / smallest - 1e-9)
    timeframe, session_minutes = barset.timeframe, barset.session_minutes
    minutes = timeframe / pd.Timedelta(minutes=1)
    tf = format_timeframe(timeframe)
    shorter = "" if feature_set == "core" else "use a feature set with a shorter warm-up (e.g. " \
        "`features=core`), "
    for sym, rep in sorted(report.items()):
        rows = int(rep["rows"])
        if rows >= need_rows:
            continue
        warm = int(rep["warmup_bars"])
        tail = max(int(rep["unlabelled_tail"]), int(horizon))  # unknown when warm-up >= bars
        need_bars = warm + tail + need_rows
        per_session = max(session_minutes / minutes, 1.0)
        more = math.ceil((need_bars - int(rep["bars"])) / per_session)
        source = barset.report.get("per_symbol", {}).get(sym, {}).get("file") \
            or barset.report.get("source", "data")
        raise FactoryError(
            f"{source} [{sym}]: too little data for features={feature_set} and the cv split: "
            f"{rep['bars']} bars of {tf}, of which the feature warm-up takes the first {warm} "
            f"and the last {tail} or so have no complete label (horizon={horizon}), leaving {rows} "
            f"labelled rows; the split needs at least {need_rows} ({boundaries} gap(s) of "
            f"{gap} rows for cv.embargo_bars={embargo} / cv.purge_bars={purge} + horizon, and "
            f"rows for train/val/test {fractions}), so at least {need_bars} bars. Fix: add "
            f"data (about {more} more sessions of {tf} bars), {shorter}or lower "
            "`cv.embargo_bars` / `cv.purge_bars`"
        )
