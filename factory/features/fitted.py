"""Features whose parameters are fitted on the training split only.

Two exist: Gaussian-HMM regime probabilities (:class:`~factory.features.regimes.HMMRegimes`,
fitted on training bars, applied with a causal forward filter) and fractional
differentiation whose order ``d`` is the smallest that makes the *training* log prices
stationary (:func:`~factory.features.catalog.fracdiff.choose_d`). Phase 1 calls
:meth:`TrainFitted.fit_transform` per symbol after the split, with a mask of the bars up to
the end of that symbol's training block; the fitted state is JSON (saved in the dataset
info) so inference applies exactly the same parameters.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.features.catalog.fracdiff import (
    DEFAULT_D_GRID,
    choose_d,
    fracdiff_series,
    fracdiff_weights,
)
from factory.features.matrix import release_free_memory
from factory.features.regimes import HMMRegimes


class TrainFitted:
    """Configured under ``features.fitted`` (``hmm`` and/or ``fracdiff``; null to skip)."""

    def __init__(self, hmm: Mapping | None = None, fracdiff: Mapping | None = None) -> None:
        self.hmm = dict(hmm) if hmm else None
        self.fracdiff = dict(fracdiff) if fracdiff else None
        if self.fracdiff:
            allowed = {"d_grid", "pvalue", "window", "threshold", "lags"}
            bad = sorted(set(self.fracdiff) - allowed)
            if bad:
                raise FactoryError(f"`features.fitted.fracdiff` has no key(s) {bad}; "
                                   f"valid: {sorted(allowed)}")

    @property
    def columns(self) -> list[str]:
        cols = HMMRegimes(**self.hmm).columns if self.hmm else []
        return cols + (["ffd_fitted"] if self.fracdiff else [])

    @property
    def warmup(self) -> int:
        """Leading bars left undefined (an upper bound for fracdiff: its window)."""
        warm = HMMRegimes(**self.hmm).warmup if self.hmm else 0
        if self.fracdiff:
            warm = max(warm, int(self.fracdiff.get("window", 100)) - 1)
        return warm

    def fit_transform(self, bars: pd.DataFrame, train_mask: np.ndarray,
                      timings: dict[str, float] | None = None
                      ) -> tuple[dict[str, np.ndarray], dict]:
        """Columns for every bar of one symbol, and the fitted state (JSON-able).

        One after the other, the freed memory handed back between them: the feature
        matrix is complete by now, and their temporaries (tens of MB each on a million
        bars) add to its peak. ``timings``: seconds of ``hmm`` and ``fracdiff``."""
        timings = {} if timings is None else timings
        columns: dict[str, np.ndarray] = {}
        state: dict = {}
        if self.hmm:
            t0 = time.perf_counter()
            model = HMMRegimes(**self.hmm).fit(bars, train_mask)
            release_free_memory()  # the fit's temporaries, before the filter's
            columns.update(model.transform(bars))
            state["hmm"] = model.get_state()
            release_free_memory()  # the filter's temporaries, before fracdiff's
            timings["hmm"] = timings.get("hmm", 0.0) + time.perf_counter() - t0
        if self.fracdiff:
            t0 = time.perf_counter()
            columns["ffd_fitted"], state["fracdiff"] = self._fracdiff(
                bars["close"].to_numpy(np.float64), train_mask)
            timings["fracdiff"] = timings.get("fracdiff", 0.0) + time.perf_counter() - t0
        return columns, state

    def _fracdiff(self, close: np.ndarray, train_mask: np.ndarray
                  ) -> tuple[np.ndarray, dict]:
        """The fracdiff'd log close with d chosen on the training bars, and its state."""
        params = {"window": 100, "threshold": 1e-5, **self.fracdiff}
        log_close = np.log(close)
        d = choose_d(log_close[train_mask], d_grid=params.get("d_grid", DEFAULT_D_GRID),
                     pvalue=params.get("pvalue", 0.05), window=params["window"],
                     threshold=params["threshold"], lags=params.get("lags", 1))
        weights = fracdiff_weights(d, params["window"], params["threshold"])
        state = {"d": d, "window": params["window"], "threshold": params["threshold"]}
        return fracdiff_series(log_close, weights), state


def prefetch_hmmlearn() -> None:
    """Start importing hmmlearn (with scikit-learn and SciPy: most of a second) on a
    background thread, so that it overlaps the work before the HMM fit."""
    if "hmmlearn.hmm" not in sys.modules:
        threading.Thread(target=_import_quietly, args=("hmmlearn.hmm",), daemon=True,
                         name="prefetch-hmmlearn").start()


def _import_quietly(module: str) -> None:
    # a failed import surfaces where the module is used (HMMRegimes.fit), with its message
    with contextlib.suppress(ImportError):
        importlib.import_module(module)
