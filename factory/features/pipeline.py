"""Feature pipeline: configured feature groups per symbol, on the base bars and on a ladder
of higher timeframes, plus column selection fitted on training rows only.

The same object computes features for training and (later) live inference, so the
definitions live in exactly one place: the registry (:mod:`factory.features.registry`).

Ladder rungs equal to the working timeframe are the base features themselves; rungs below it
come from the source's finer bars when it has them (and are skipped, and reported, when it
does not). Higher timeframes are built by resampling the symbol's base bars (stamped by open). A
higher-timeframe bar stamped T covers [T, T + tf) and is *complete* at T + tf; a base bar
stamped t is known at its close t + base. Base bar t therefore sees the latest
higher-timeframe bar with T + tf <= t + base, never the one in progress: at the 10:35 bar
(closing 10:40) a 1-hour feature comes from the 09:00-10:00 bar.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from factory.data.resample import infer_timeframe, parse_timeframe, resample_bars
from factory.errors import FactoryError
from factory.features.fitted import TrainFitted
from factory.features.matrix import ColumnMatrix, release_free_memory
from factory.features.registry import catalog
from factory.features.selection import FeatureSelection
from factory.threads import resolve_threads

log = logging.getLogger(__name__)

MAX_THREADS = 4
MIN_BARS_PER_THREAD = 20_000
PENDING = 1  # finished results waiting for the writer beyond one per thread (bounds memory)
# Each worker thread frees its temporaries into its own malloc arena, which glibc keeps: hand
# them back every few tasks, or they add some 200 MB to the peak on a million bars.
TRIM_EVERY = 4


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(
        value, DictConfig | ListConfig) else value


def _add(timings: dict[str, float], stage: str, seconds: float) -> None:
    timings[stage] = timings.get(stage, 0.0) + seconds


def _contiguous(rows: np.ndarray | None) -> np.ndarray | slice | None:
    """``rows`` as a slice when they are one ascending run of positions (indexing by it then
    gives a view), else ``rows`` itself."""
    if rows is None or len(rows) == 0:
        return rows
    rows = np.asarray(rows)
    first, last = int(rows[0]), int(rows[-1])
    if first >= 0 and last - first + 1 == len(rows) and bool((np.diff(rows) == 1).all()):
        return slice(first, last + 1)
    return rows


def _fingerprint(raw: np.ndarray) -> bytes:
    """A few kilobytes sampled from a column's bytes: equal for equal columns, so only
    columns sharing it are compared in full."""
    step = max(1, len(raw) // 4096)
    return len(raw).to_bytes(8, "little") + raw[::step].tobytes()


def _threads(n_bars: int) -> int:
    """Worker threads for the feature groups: one per usable core (at most MAX_THREADS);
    one below MIN_BARS_PER_THREAD bars (pool overhead beats the gain on small data) or when
    other work already keeps the cores busy (1-minute load average >= cores - 0.5): the
    groups hold the GIL between their numpy / pandas / TA-Lib calls, and threads whose
    cores are taken convoy on it. Measured on 2 cores, 1M bars: at load 1.3 the base groups
    took 1.6 s on 2 threads against 2.5 s serial; at load 5.5 the full set took 6-8 s on 2
    threads against 5-6.4 s serial."""
    if n_bars < MIN_BARS_PER_THREAD:
        return 1
    cores = resolve_threads()
    if hasattr(os, "getloadavg") and os.getloadavg()[0] >= cores - 0.5:
        return 1
    return max(1, min(cores, MAX_THREADS))


def _ordered(fn, tasks: list, threads: int):
    """Yield ``(task, fn(task))`` in task order, computed on ``threads`` threads with at most
    ``threads + PENDING`` tasks submitted and not yet yielded (bounded memory)."""
    if threads <= 1:
        for task in tasks:
            yield task, fn(task)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="features")
    try:
        pending: deque = deque()
        queue = iter(tasks)
        for task in queue:
            pending.append((task, pool.submit(fn, task)))
            if len(pending) >= threads + PENDING:
                break
        while pending:
            task, future = pending.popleft()
            result = future.result()
            for nxt in queue:
                pending.append((nxt, pool.submit(fn, nxt)))
                break
            yield task, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def timeframe_label(tf: pd.Timedelta) -> str:
    minutes = int(tf / pd.Timedelta(minutes=1))
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


class FeaturePipeline:
    """Compute the configured feature groups on one symbol's bars.

    Parameters
    ----------
    groups:
        ``"all"`` (every registered group with its defaults) or a mapping of group name to
        keyword parameters, e.g. ``{"returns": {"lags": [1, 5]}, "rsi": {"periods": [14]}}``.
    name:
        The feature set's name, recorded in the dataset metadata.
    timeframes:
        Higher timeframes of the ladder (e.g. ``["15min", "1h"]``); empty for none.
    mtf_groups:
        Groups (of ``groups``) also computed on each higher timeframe; ``"all"`` for all.
    fitted:
        Features fitted on training bars (``{hmm: {...}, fracdiff: {...}}``), added by Phase 1
        after the split; see :mod:`factory.features.fitted`.
    max_correlation:
        Drop a column whose absolute correlation with an already kept column exceeds this,
        measured on training rows only (None: keep all). Constant and duplicate columns
        (on training rows) are always dropped. Every drop is listed in the report.
    selection:
        ``None``, or the settings of :class:`~factory.features.selection.FeatureSelection`
        (MDA inside purged training folds, run by Phase 1 after the pruning).
    """

    def __init__(
        self,
        groups: Mapping[str, Mapping | None] | str = "all",
        name: str = "core",
        timeframes: Sequence[str] = (),
        mtf_groups: Sequence[str] | str = (),
        max_correlation: float | None = None,
        fitted: Mapping | None = None,
        selection: Mapping | None = None,
    ) -> None:
        registry = catalog()
        groups = _plain(groups)
        if groups == "all":
            groups = {g: {} for g in registry}
        elif not isinstance(groups, Mapping):
            raise FactoryError(f"`features.groups` must be 'all' or a mapping, got {groups!r}")
        unknown = sorted(set(groups) - set(registry))
        if unknown:
            raise FactoryError(
                f"unknown feature group(s) {unknown} in `features.groups`; "
                f"valid groups: {sorted(registry)}"
            )
        self.groups = {k: dict(v or {}) for k, v in groups.items()}
        for group, params in self.groups.items():
            allowed = registry[group].parameters()
            bad = sorted(set(params) - set(allowed))
            if bad:
                raise FactoryError(
                    f"feature group '{group}' has no parameter(s) {bad} "
                    f"(`features.groups.{group}`); valid: {allowed}"
                )
        mtf_groups = _plain(mtf_groups)
        self.mtf_groups = list(self.groups) if mtf_groups == "all" else list(mtf_groups or ())
        missing = sorted(set(self.mtf_groups) - set(self.groups))
        if missing:
            raise FactoryError(f"`features.mtf_groups` {missing} are not in `features.groups`")
        self.timeframes = [parse_timeframe(tf, "features.timeframes") for tf in timeframes or ()]
        if len(set(self.timeframes)) != len(self.timeframes):
            raise FactoryError(f"`features.timeframes` repeats a timeframe: {list(timeframes)}")
        self.name = name
        self.max_correlation = max_correlation
        self.fitted = TrainFitted(**(_plain(fitted) or {}))
        self.selection = None if selection is None else FeatureSelection(**_plain(selection))

    def _group_warmup(self, names) -> int:
        registry = catalog()
        return max((registry[g].warmup_bars(self.groups[g]) for g in names), default=0)

    def warmup_for(self, base: pd.Timedelta) -> int:
        """Leading base bars with at least one undefined feature (an upper bound with MTF)."""
        warm = max(self._group_warmup(self.groups), self.fitted.warmup)
        for tf in self.timeframes:
            if tf == base:
                continue
            ratio = int(np.ceil(tf / base))
            warm = max(warm, (self._group_warmup(self.mtf_groups) + 1) * ratio)
        return warm

    def warmups(self) -> dict[str, int]:
        """Warm-up in bars of each configured group (on its own timeframe), for the report."""
        registry = catalog()
        return {g: registry[g].warmup_bars(p) for g, p in self.groups.items()}

    @property
    def warmup(self) -> int:
        """Warm-up of the base-timeframe groups (no ladder)."""
        return self._group_warmup(self.groups)

    def _compute(self, bars: pd.DataFrame, names) -> dict[str, np.ndarray]:
        """Columns of the named groups as computed (float64 mostly), in order; a group
        repeating an earlier group's column is an error."""
        registry = catalog()
        columns: dict[str, np.ndarray] = {}
        for group in names:
            produced = registry[group].fn(bars, **self.groups[group])
            dup = set(produced) & set(columns)
            if dup:
                raise FactoryError(f"feature group '{group}' repeats columns {sorted(dup)}")
            columns.update(produced)
        return columns

    def _rung(self, source: pd.DataFrame, tf: pd.Timedelta, base_close: pd.DatetimeIndex,
              spacing: pd.Timedelta | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One ladder rung: its groups' columns on ``source`` (bars ``spacing`` apart)
        resampled to ``tf``, and for each base bar the position of the latest ``tf`` bar
        complete at its close (-1: none yet)."""
        htf = resample_bars(source, tf, spacing=spacing)
        columns = self._compute(htf, self.mtf_groups)
        pos = (htf.index + tf).searchsorted(base_close, side="right") - 1
        return columns, pos

    def rungs(self, base: pd.Timedelta, has_fine: bool) -> tuple[list, list]:
        """Ladder rungs computed (all but the base) and those skipped for lack of finer data."""
        used = [tf for tf in self.timeframes if tf > base or (tf < base and has_fine)]
        skipped = [timeframe_label(tf) for tf in self.timeframes if tf < base and not has_fine]
        return used, skipped

    def transform(self, bars: pd.DataFrame, base: pd.Timedelta | None = None,
                  fine: pd.DataFrame | None = None,
                  timings: dict[str, float] | None = None) -> pd.DataFrame:
        """Feature frame (float32) indexed like ``bars``; leading warm-up rows hold NaNs.

        ``fine``: the source's finer bars, for ladder rungs below ``base`` (a 1-minute rung
        under 5-minute bars uses the minute that closes with each 5-minute bar).
        ``timings``: seconds per stage (``catalog``, ``ladder``) are added to it.
        """
        matrix = ColumnMatrix(len(bars))
        self.fill(matrix, bars, base, fine, timings=timings)
        return matrix.frame(bars.index)

    def fill(self, matrix: ColumnMatrix, bars: pd.DataFrame, base: pd.Timedelta | None = None,
             fine: pd.DataFrame | None = None, start: int = 0,
             timings: dict[str, float] | None = None) -> tuple[dict[str, int], np.ndarray]:
        """Write the features of one symbol's ``bars`` to rows ``start:start+len(bars)`` of
        ``matrix`` (as float32; the columns :meth:`transform` returns, in its order).

        Returns the NaN count of each of this symbol's columns (in column order) and a mask
        of the bars whose features are all finite. The groups and ladder rungs run on a few
        threads (numpy, pandas and TA-Lib release the GIL) while this thread converts and
        writes the finished columns, in the fixed column order: the result does not depend
        on the thread count.
        """
        timings = {} if timings is None else timings
        if self.timeframes and base is None:
            raise FactoryError("FeaturePipeline.transform needs the base timeframe for MTF")
        n = len(bars)
        registry = catalog()  # loaded here, not first inside a worker thread
        tasks: list[tuple] = [("group", g) for g in self.groups]
        spacing: dict[bool, pd.Timedelta | None] = {}  # each source's bar spacing, once
        if self.timeframes:
            base_close = bars.index + base
            used, _ = self.rungs(base, fine is not None)
            tasks += [("rung", tf) for tf in used]
            for coarse, source in ((True, bars), (False, fine)):
                if any((tf > base) == coarse for tf in used) and len(source) >= 2:
                    spacing[coarse] = infer_timeframe(source.index)

        def run(task: tuple):
            kind, what = task
            if kind == "group":
                return registry[what].fn(bars, **self.groups[what])
            coarse = what > base
            return self._rung(bars if coarse else fine, what, base_close, spacing.get(coarse))

        finite = np.ones(n, bool)
        nan: dict[str, int] = {}
        base_names: set[str] = set()
        recheck = False
        t0 = time.perf_counter()
        t_catalog = t0
        threads = _threads(n)
        for i, ((kind, what), result) in enumerate(_ordered(run, tasks, threads)):
            if threads > 1 and i % TRIM_EVERY == TRIM_EVERY - 1:
                release_free_memory()  # the worker threads' freed temporaries
            if kind == "group":
                dup = set(result) & base_names
                if dup:
                    raise FactoryError(f"feature group '{what}' repeats columns {sorted(dup)}")
                base_names.update(result)
                for name, values in result.items():
                    nan[name] = matrix.put(name, values, start, finite)
                t_catalog = time.perf_counter()
                continue
            columns, pos = result
            valid = pos >= 0
            first = int(np.argmax(valid)) if valid.any() else n
            suffix = timeframe_label(what)
            for key, values in columns.items():
                name = f"{key}_{suffix}"
                recheck |= name in nan  # overwrites a column: rescan this symbol's columns
                if valid[first:].all():  # bars sorted: the valid rows are a suffix
                    nan[name] = matrix.put_gather(name, values, pos, first, start, finite)
                else:
                    aligned = np.full(n, np.nan, np.float32)
                    aligned[valid] = np.asarray(values, np.float32)[pos[valid]]
                    nan[name] = matrix.put(name, aligned, start, finite)
        if recheck:
            finite[:] = True
            for name in nan:
                values = matrix.column(name)[start:start + n]
                finite &= np.isfinite(values)
                nan[name] = int(np.isnan(values).sum())
        _add(timings, "catalog", t_catalog - t0)
        _add(timings, "ladder", time.perf_counter() - t_catalog)
        return nan, finite

    def select_columns(self, X: pd.DataFrame, rows: np.ndarray | None = None
                       ) -> tuple[list[str], dict[str, list[str]]]:
        """Columns to keep, decided on training rows only (``rows`` of ``X``; all when None),
        and what was dropped and why. Works one column at a time: no copy of the matrix."""
        dropped: dict[str, list[str]] = {"constant": [], "duplicate": [], "correlated": []}
        take = _contiguous(rows)  # a slice when the training rows are one run: no copies
        seen: dict[bytes, list[np.ndarray]] = {}  # sample of the values -> kept columns' bytes
        candidates = []
        for column in X.columns:
            values = X[column].to_numpy()
            values = values if rows is None else values[take]
            if not np.nanmax(values) > np.nanmin(values):
                dropped["constant"].append(column)
                continue
            raw = np.ascontiguousarray(values).reshape(-1).view(np.uint8)
            same = seen.setdefault(_fingerprint(raw), [])
            if any(np.array_equal(raw, other) for other in same):
                dropped["duplicate"].append(column)  # byte for byte a kept column's values
                continue
            same.append(raw)
            candidates.append(column)
        if self.max_correlation is not None and len(candidates) > 1:
            n = len(X) if rows is None else len(rows)
            step = int(np.ceil(n / 50_000))  # deterministic thinning: every k-th training row
            sample_rows = (np.arange(n) if rows is None else rows)[::step]
            sample = np.column_stack([X[c].to_numpy()[sample_rows] for c in candidates])
            corr = np.abs(np.corrcoef(sample.astype(np.float64), rowvar=False))
            kept_idx: list[int] = []
            for j in range(len(candidates)):
                if kept_idx and np.nanmax(corr[j, kept_idx]) > self.max_correlation:
                    dropped["correlated"].append(candidates[j])
                else:
                    kept_idx.append(j)
            candidates = [candidates[j] for j in kept_idx]
        return candidates, dropped
