"""Lazy windows over the Phase-1 feature matrix: segments, window ends, per-batch gathering.

A *segment* is a maximal run of dataset rows of one symbol and one split (train, val or
test; never ``gap``) whose bars are consecutive (``bar_idx`` steps by 1). A window of
``seq_len`` rows ending at row ``r`` is valid only when it lies inside ``r``'s segment, so
it never crosses a symbol, a split boundary, a purged/embargoed gap or a hole left by
excluded rows. The first ``seq_len - 1`` rows of each segment therefore have no window; they
are dropped and counted (:func:`window_ends`), never silently.

Nothing here materialises an ``(n, seq_len, features)`` array: an input keeps a reference to
the 2-D matrix plus the window-end positions, and :meth:`SequenceInput.batch` gathers one
batch of windows at a time (fancy indexing of a ``(batch, seq_len)`` index grid).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from factory.errors import FactoryError


def segment_position(meta: pd.DataFrame) -> np.ndarray:
    """Position of every row within its segment (0 at each segment's first row)."""
    n = len(meta)
    if n == 0:
        return np.zeros(0, np.int64)
    symbol = meta["symbol"].to_numpy()
    split = meta["split"].to_numpy()
    bar = meta["bar_idx"].to_numpy(np.int64)
    start = np.ones(n, bool)
    start[1:] = (symbol[1:] != symbol[:-1]) | (split[1:] != split[:-1]) | (bar[1:] != bar[:-1] + 1)
    start |= split == "gap"  # every gap row is its own (unused) segment
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    return np.arange(n) - first


def cached_segment_position(ds) -> np.ndarray:
    """:func:`segment_position` of ``ds.meta``, computed once per dataset and reused."""
    cached = ds.__dict__.get("_segment_position")
    if cached is None or cached[0] is not ds.meta:
        cached = (ds.meta, segment_position(ds.meta))
        ds.__dict__["_segment_position"] = cached
    return cached[1]


def window_ends(meta: pd.DataFrame, rows: np.ndarray, seq_len: int,
                position: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """The rows of ``rows`` that have a full in-segment window, and a count of the dropped."""
    if seq_len < 1:
        raise FactoryError(f"`adapter.seq_len` must be >= 1, got {seq_len}")
    rows = np.asarray(rows, np.int64)
    position = segment_position(meta) if position is None else position
    ok = position[rows] >= seq_len - 1
    split = meta["split"].to_numpy()[rows]
    dropped = pd.Series(split[~ok]).value_counts().to_dict() if (~ok).any() else {}
    return rows[ok], {str(k): int(v) for k, v in dropped.items()}


@dataclass
class SequenceInput:
    """Windows ``X[end - seq_len + 1 : end + 1]`` for each ``end`` in ``ends``, built per batch.

    ``X`` is the shared 2-D matrix (not copied); ``center``/``scale``/``clip`` standardise a
    gathered batch. ``rows`` are the dataset rows the samples stand for (== ``ends`` when
    ``X`` is the dataset's matrix). ``y`` holds class indices, ``weight`` sample weights.
    """

    X: np.ndarray
    ends: np.ndarray
    seq_len: int
    y: np.ndarray | None
    weight: np.ndarray | None
    rows: np.ndarray
    feature_names: list[str]
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    clip: float | None = None

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def sample_shape(self) -> tuple[int, int]:
        return (self.seq_len, self.X.shape[1])

    def batch(self, positions: np.ndarray) -> np.ndarray:
        """Windows of the samples at ``positions``: float32 ``(len(positions), seq_len, F)``."""
        ends = self.ends[np.asarray(positions, np.int64)]
        grid = ends[:, None] + np.arange(1 - self.seq_len, 1)
        out = self.X[grid]
        if self.center is not None:
            out = (out - self.center.astype(np.float32)) / self.scale.astype(np.float32)
            if self.clip is not None:
                np.clip(out, -self.clip, self.clip, out=out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def subset(self, keep: np.ndarray) -> SequenceInput:
        """The samples selected by ``keep`` (boolean mask or positions); X is shared."""
        return replace(self, ends=self.ends[keep], rows=self.rows[keep],
                       y=None if self.y is None else self.y[keep],
                       weight=None if self.weight is None else self.weight[keep])

    def compact(self) -> SequenceInput:
        """The same samples over a private copy of only the matrix rows their windows use.

        Windows stay contiguous in the copy (each window's rows are all kept and sorted), so
        a column can be shuffled for permutation importance without touching the dataset.
        """
        needed = np.unique((self.ends[:, None] + np.arange(1 - self.seq_len, 1)).ravel())
        return replace(self, X=np.array(self.X[needed]), ends=np.searchsorted(needed, self.ends))

    def permute_feature(self, j: int, rng: np.random.Generator) -> SequenceInput:
        """A copy with feature ``j`` shuffled across the rows the windows use."""
        base = self.compact()
        X = base.X.copy()
        X[:, j] = rng.permutation(X[:, j])
        return replace(base, X=X)
