"""Chronological train/val/test split, purged and embargoed by label end times, per symbol.

For each symbol, labelled rows (sorted by time) are cut at the ``train`` and
``train + val`` fractions. At each boundary the *earlier* block gives up rows so that no
label of it can see the later block:

* **purge**: rows whose label ends (exit bar) within ``purge_bars`` bars of the later
  block's first bar, or after it, are removed (label overlap);
* **embargo**: rows that start within the last ``embargo_bars`` bars before the later
  block are removed too (serial correlation of features and returns).

Evaluation blocks keep all their rows. Removed rows get split ``"gap"`` and are counted in
the report, never silently dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factory.errors import FactoryError

SPLITS = ("train", "val", "test")


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
                f"`cv.train/val/test` must be positive and sum to 1, got {fractions}"
            )
        if purge_bars < 0 or embargo_bars < 0:
            raise FactoryError("`cv.purge_bars` and `cv.embargo_bars` must be >= 0")
        self.fractions = fractions
        self.purge_bars = int(purge_bars)
        self.embargo_bars = int(embargo_bars)

    def assign_symbol(self, bar_idx: np.ndarray, exit_idx: np.ndarray) -> np.ndarray:
        """Split names for one symbol's rows (``bar_idx`` sorted ascending)."""
        n = len(bar_idx)
        cut1 = int(np.floor(n * self.fractions[0]))
        cut2 = int(np.floor(n * (self.fractions[0] + self.fractions[1])))
        block = np.zeros(n, np.int8)
        block[cut1:cut2] = 1
        block[cut2:] = 2
        keep = np.ones(n, bool)
        for earlier, start in ((0, cut1), (1, cut2)):
            if start >= n:
                continue
            first_bar = bar_idx[start]
            in_block = block == earlier
            purged = exit_idx >= first_bar - self.purge_bars
            embargoed = bar_idx >= first_bar - self.embargo_bars
            keep &= ~(in_block & (purged | embargoed))
        names = np.array(SPLITS, dtype=object)[block]
        names[~keep] = "gap"
        return names

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
                        f"only {len(rows)} labelled rows; add data (e.g. `data.days=240`) or "
                        f"lower `cv.embargo_bars` / `cv.purge_bars`"
                    )
            out[order] = names
        return out
