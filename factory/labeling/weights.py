"""Sample weights from label concurrency (average uniqueness, Lopez de Prado ch. 4).

A label spans bars ``entry_idx .. exit_idx``. The concurrency c_b of bar b counts labels
spanning it; a label's average uniqueness is the mean of 1/c_b over its span. Computed with
difference arrays and cumulative sums: O(n) with no per-label loop.
"""

from __future__ import annotations

import numpy as np


def average_uniqueness(entry_idx: np.ndarray, exit_idx: np.ndarray, n_bars: int) -> np.ndarray:
    """Average uniqueness of each label among the labels given (one symbol, one block).

    Only the labels passed in count towards concurrency, so weights of a training block
    never depend on validation or test labels.
    """
    entry_idx = np.asarray(entry_idx, np.int64)
    exit_idx = np.asarray(exit_idx, np.int64)
    if len(entry_idx) == 0:
        return np.zeros(0)
    diff = np.zeros(n_bars + 1, np.int64)
    np.add.at(diff, entry_idx, 1)
    np.add.at(diff, exit_idx + 1, -1)
    conc = np.cumsum(diff[:-1])
    inv = np.zeros(n_bars, np.float64)
    busy = conc > 0
    inv[busy] = 1.0 / conc[busy]
    csum = np.concatenate([[0.0], np.cumsum(inv)])
    span = exit_idx - entry_idx + 1
    # differences of a long running sum carry rounding of order 1e-12: clip to [0, 1]
    return np.clip((csum[exit_idx + 1] - csum[entry_idx]) / span, 0.0, 1.0)
