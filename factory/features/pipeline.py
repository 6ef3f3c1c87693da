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

import hashlib
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from factory.data.resample import parse_timeframe, resample_bars
from factory.errors import FactoryError
from factory.features.fitted import TrainFitted
from factory.features.registry import catalog
from factory.features.selection import FeatureSelection

log = logging.getLogger(__name__)


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(
        value, DictConfig | ListConfig) else value


def _frame(columns: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """One float32 frame from the columns without a second full copy: each column is moved
    into a preallocated column-major matrix (which pandas wraps as one block) and freed."""
    names = list(columns)
    matrix = np.empty((len(index), len(names)), np.float32, order="F")
    for j, name in enumerate(names):
        matrix[:, j] = columns.pop(name)
    return pd.DataFrame(matrix, index=index, columns=names, copy=False)


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
        """Columns of the named groups, as float32 (the dataset's dtype) to halve memory."""
        registry = catalog()
        columns: dict[str, np.ndarray] = {}
        for group in names:
            produced = registry[group].fn(bars, **self.groups[group])
            dup = set(produced) & set(columns)
            if dup:
                raise FactoryError(f"feature group '{group}' repeats columns {sorted(dup)}")
            columns.update({k: np.asarray(v, np.float32) for k, v in produced.items()})
        return columns

    def rungs(self, base: pd.Timedelta, has_fine: bool) -> tuple[list, list]:
        """Ladder rungs computed (all but the base) and those skipped for lack of finer data."""
        used = [tf for tf in self.timeframes if tf > base or (tf < base and has_fine)]
        skipped = [timeframe_label(tf) for tf in self.timeframes if tf < base and not has_fine]
        return used, skipped

    def transform(self, bars: pd.DataFrame, base: pd.Timedelta | None = None,
                  fine: pd.DataFrame | None = None) -> pd.DataFrame:
        """Feature frame (float32) indexed like ``bars``; leading warm-up rows hold NaNs.

        ``fine``: the source's finer bars, for ladder rungs below ``base`` (a 1-minute rung
        under 5-minute bars uses the minute that closes with each 5-minute bar).
        """
        columns = self._compute(bars, self.groups)
        if self.timeframes:
            if base is None:
                raise FactoryError("FeaturePipeline.transform needs the base timeframe for MTF")
            base_close = bars.index + base
            used, _ = self.rungs(base, fine is not None)
            for tf in used:
                htf = resample_bars(bars if tf > base else fine, tf)
                htf_cols = self._compute(htf, self.mtf_groups)
                # latest higher-timeframe bar complete at the base bar's close
                pos = (htf.index + tf).searchsorted(base_close, side="right") - 1
                valid = pos >= 0
                suffix = timeframe_label(tf)
                for key, values in htf_cols.items():
                    aligned = np.full(len(bars), np.nan, np.float32)
                    aligned[valid] = values[pos[valid]]
                    columns[f"{key}_{suffix}"] = aligned
        return _frame(columns, bars.index)

    def select_columns(self, X: pd.DataFrame, rows: np.ndarray | None = None
                       ) -> tuple[list[str], dict[str, list[str]]]:
        """Columns to keep, decided on training rows only (``rows`` of ``X``; all when None),
        and what was dropped and why. Works one column at a time: no copy of the matrix."""
        dropped: dict[str, list[str]] = {"constant": [], "duplicate": [], "correlated": []}
        seen: set[bytes] = set()
        candidates = []
        for column in X.columns:
            values = X[column].to_numpy()
            values = values if rows is None else values[rows]
            if not np.nanmax(values) > np.nanmin(values):
                dropped["constant"].append(column)
                continue
            digest = hashlib.blake2b(np.ascontiguousarray(values).tobytes(),
                                     digest_size=16).digest()
            if digest in seen:  # exact duplicate of a kept column on the training rows
                dropped["duplicate"].append(column)
                continue
            seen.add(digest)
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
