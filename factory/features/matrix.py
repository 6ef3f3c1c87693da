"""The float32 feature matrix of Phase 1, built in place in one buffer.

A million bars x 346 features is 1.4 GB of float32. Building it as a dict of columns, then a
frame, then a row subset, then a concat with the fitted columns held up to three copies at
once. :class:`ColumnMatrix` keeps one buffer instead: column ``j`` of the ``n`` rows is
``flat[j * n:(j + 1) * n]``. Columns are converted to float32 as they are written (and
scanned for NaN / non-finite values in the same pass); rows are kept and columns dropped by
moving data forward inside the buffer. Address space for many columns is reserved up front
(untouched pages cost nothing) and trimmed with ``ndarray.resize`` (realloc shrinks a large
block in place); growing is the fallback: moving a block backed by transparent huge pages
makes the kernel count it twice in the peak RSS for a moment. :meth:`frame` wraps the result as
one column-major block that pandas uses without a copy.

Values are bit for bit those of ``np.asarray(column, np.float32)``: the kernels cast each
float64 with the same IEEE round-to-nearest conversion numpy uses.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit

log = logging.getLogger(__name__)

GROW_COLUMNS = 16  # columns added per growth step (the slack is at most this many columns)
RESERVE_COLUMNS = 1024  # address space reserved up front, in columns (see _reserved_columns)


@njit(cache=True, nogil=True, inline="always")
def _store(dst, i, value, finite):  # pragma: no cover (compiled)
    """dst[i] = float32(value); clear ``finite[i]`` where not finite; 1 if NaN, else 0."""
    x = np.float32(value)
    dst[i] = x
    if np.isfinite(x):
        return 0
    finite[i] = False
    return 1 if np.isnan(x) else 0


@njit(cache=True, nogil=True)
def _put(dst, src, finite):  # pragma: no cover (compiled)
    """dst[i] = float32(src[i]) with :func:`_store`; return the NaN count."""
    nan = 0
    for i in range(src.shape[0]):
        nan += _store(dst, i, src[i], finite)
    return nan


@njit(cache=True, nogil=True)
def _put_gather(dst, src, pos, first, finite):  # pragma: no cover (compiled)
    """dst[:first] = NaN, dst[i] = float32(src[pos[i]]) after; like :func:`_put`."""
    for i in range(first):
        dst[i] = np.nan
        finite[i] = False
    nan = first
    for i in range(first, dst.shape[0]):
        nan += _store(dst, i, src[pos[i]], finite)
    return nan


@njit(cache=True, nogil=True)
def _keep_rows(flat, n, k, rows):  # pragma: no cover (compiled)
    """Column j's rows ``rows`` (ascending) to flat[j*m:(j+1)*m], m = len(rows). Writing
    forward never overwrites a value still to be read: j*m + i <= j*n + rows[i]."""
    m = rows.shape[0]
    for j in range(k):
        src, dst = j * n, j * m
        for i in range(m):
            flat[dst + i] = flat[src + rows[i]]


def release_free_memory() -> None:
    """Hand freed memory back to the OS: the C heap's (glibc ``malloc_trim``; elsewhere a
    no-op) and Arrow's pool (pandas' string columns live there).

    glibc keeps freed blocks below 32 MB for reuse, in one arena per thread that allocated
    them, so the temporaries of a finished step (the feature threads, the data generator)
    would otherwise stay resident through the next full-size step and count in its peak."""
    pa.default_memory_pool().release_unused()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


MADV_NOHUGEPAGE = 15  # Linux <sys/mman.h>


def _no_huge_pages(buffer: np.ndarray) -> None:
    """Back ``buffer`` with ordinary pages (Linux; elsewhere a no-op).

    numpy asks for transparent huge pages on arrays of 4 MB and more; where the kernel
    compacts memory to find them on a fault (``defrag=madvise``, the common default), a
    busy or fragmented machine stalls: filling 1.4 GB measured 0.2 to 2.2 s with huge pages
    and a steady 0.5 to 0.6 s without, on the same machine minutes apart."""
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return
    page = mmap.PAGESIZE
    start = -(-buffer.ctypes.data // page) * page
    length = (buffer.ctypes.data + buffer.nbytes - start) // page * page
    if length > 0:
        madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), MADV_NOHUGEPAGE)


def _reserved_columns(n_rows: int) -> int:
    """Columns of address space to reserve up front: at most RESERVE_COLUMNS and a quarter
    of physical memory. Pages never written take no memory, and growing later would zero
    (touch) the new room, so reserving is free where growing is not."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return GROW_COLUMNS
    fit = physical // 4 // max(4 * n_rows, 1)
    return int(max(GROW_COLUMNS, min(RESERVE_COLUMNS, fit)))


def _floats(values) -> np.ndarray:
    """float64 / float32 as they are; anything else cast to float32 directly (as numpy's
    ``np.asarray(values, np.float32)`` does, no double rounding through float64)."""
    values = np.ascontiguousarray(values)
    return values if values.dtype in (np.float64, np.float32) else values.astype(np.float32)


class ColumnMatrix:
    """Named float32 columns of ``n_rows`` rows in one growable buffer (see the module doc).

    Views into the buffer are internal and never held across a call that may resize it;
    :meth:`frame` is the one view handed out (copy it or drop it before changing the matrix:
    a resize then finds the buffer still referenced and falls back to a copy).
    """

    def __init__(self, n_rows: int, capacity: int | None = None) -> None:
        self.n = int(n_rows)
        self.names: list[str] = []
        self._pos: dict[str, int] = {}
        capacity = _reserved_columns(self.n) if capacity is None else max(int(capacity), 1)
        self._flat = np.empty(capacity * self.n, np.float32)
        _no_huge_pages(self._flat)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._pos

    def _shared(self) -> bool:
        """Whether a view of the buffer is alive (a frame handed out, an Arrow column: each
        holds a reference to it). Counted here rather than by numpy's ``refcheck``, which
        also counts the reference a profiler (cProfile) takes to the bound method."""
        return self._flat.base is not None or sys.getrefcount(self._flat) > 2

    def _resize(self, size: int) -> None:
        """realloc in place when nothing views the buffer, else a copy (the views keep the
        old one)."""
        if not self._shared():
            self._flat.resize(size, refcheck=False)
            return
        log.debug("ColumnMatrix: buffer in use, resizing by copy")
        new = np.empty(size, np.float32)
        keep = min(size, self._flat.size)
        new[:keep] = self._flat[:keep]
        self._flat = new

    def _column(self, name: str) -> tuple[np.ndarray, bool]:
        """The column ``name`` (added at the end if new, uninitialised) and whether it is new."""
        j = self._pos.get(name)
        new = j is None
        if new:
            j = len(self.names)
            if (j + 1) * self.n > self._flat.size:
                self._resize((j + GROW_COLUMNS) * self.n)
            self.names.append(name)
            self._pos[name] = j
        return self._flat[j * self.n:(j + 1) * self.n], new

    def reserve(self, columns: int) -> None:
        """Room for ``columns`` more columns without growing in steps."""
        size = (len(self.names) + int(columns)) * self.n
        if size > self._flat.size:
            self._resize(size)

    def _segment(self, name: str, start: int, length: int) -> np.ndarray:
        """Rows ``start:start+length`` of ``name``; a new column is NaN outside them."""
        col, new = self._column(name)
        if new:
            col[:start] = np.nan
            col[start + length:] = np.nan
        return col[start:start + length]

    def put(self, name: str, values: np.ndarray, start: int = 0,
            finite: np.ndarray | None = None) -> int:
        """Write ``values`` (any float dtype) as float32 to rows ``start:start+len(values)``
        of column ``name`` (added if new; its other rows NaN). Clears ``finite`` (one entry
        per value) where a written value is not finite. Returns the number of NaNs written."""
        values = _floats(values)
        dst = self._segment(name, start, len(values))
        finite = np.ones(len(values), bool) if finite is None else finite
        return int(_put(dst, values, finite))

    def put_gather(self, name: str, values: np.ndarray, pos: np.ndarray, first: int,
                   start: int = 0, finite: np.ndarray | None = None) -> int:
        """Write NaN to the first ``first`` of ``len(pos)`` rows from ``start``, then
        ``float32(values[pos[i]])``; otherwise like :meth:`put`."""
        values = _floats(values)
        dst = self._segment(name, start, len(pos))
        finite = np.ones(len(pos), bool) if finite is None else finite
        return int(_put_gather(dst, values, np.ascontiguousarray(pos, np.int64), int(first),
                               finite))

    def set_rows(self, name: str, rows: np.ndarray, values: np.ndarray) -> None:
        """``column[rows] = values`` (numpy's cast to float32); a new column is NaN elsewhere."""
        col, new = self._column(name)
        if new:
            col[:] = np.nan
        col[rows] = values

    def column(self, name: str) -> np.ndarray:
        """A read-only view of one column (do not keep it across changes to the matrix)."""
        j = self._pos[name]
        view = self._flat[j * self.n:(j + 1) * self.n]
        view.flags.writeable = False
        return view

    def keep_rows(self, rows: np.ndarray) -> None:
        """Keep rows ``rows`` (ascending positions) of every column, in place."""
        rows = np.ascontiguousarray(rows, np.int64)
        if len(rows) and (rows[0] < 0 or rows[-1] >= self.n or (np.diff(rows) <= 0).any()):
            raise ValueError("ColumnMatrix.keep_rows: rows must be ascending positions")
        if len(rows) == self.n:
            return
        if self._shared():  # data moves in place below: leave the views their copy
            self._resize(self._flat.size)
        m, k = len(rows), len(self.names)
        if m and rows[-1] - rows[0] == m - 1:  # one run of rows (the usual case): memmove
            base, size = self._flat.ctypes.data, self._flat.itemsize
            for j in range(k):
                ctypes.memmove(base + j * m * size, base + (j * self.n + int(rows[0])) * size,
                               m * size)
        else:
            _keep_rows(self._flat, self.n, k, rows)
        self.n = len(rows)  # the room freed stays reserved (growing would touch it): trim

    def keep_columns(self, names: Sequence[str]) -> None:
        """Keep the named columns, which must be in matrix order, in place."""
        idx = [self._pos[c] for c in names]
        if any(b <= a for a, b in zip(idx, idx[1:], strict=False)):
            raise ValueError("ColumnMatrix.keep_columns: names must be in matrix order")
        n = self.n
        if self._shared() and idx != list(range(len(idx))):  # as in keep_rows
            self._resize(self._flat.size)
        for i, j in enumerate(idx):
            if i != j:  # j > i: source and destination never overlap
                self._flat[i * n:(i + 1) * n] = self._flat[j * n:(j + 1) * n]
        self.names = list(names)
        self._pos = {c: i for i, c in enumerate(self.names)}
        self._resize(len(self.names) * n)

    def trim(self) -> None:
        """Release the unused capacity."""
        if self._flat.size != len(self.names) * self.n:
            self._resize(len(self.names) * self.n)

    def frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The columns as one float32 frame backed by the buffer (column-major, no copy)."""
        self.trim()
        k, n = len(self.names), self.n
        matrix = self._flat[:k * n].reshape(k, n).T
        index = pd.RangeIndex(n) if index is None else index
        return pd.DataFrame(matrix, index=index, columns=list(self.names), copy=False)
