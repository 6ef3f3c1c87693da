"""A feature pipeline's selected columns for one symbol, one new bar at a time.

:class:`FeatureStream` is the streaming twin of :meth:`FeaturePipeline.transform` plus the
fitted columns (:func:`factory.bundle.features.apply_fitted`): the base-timeframe groups
(:class:`~factory.features.streaming.GroupSet`), each ladder rung's groups on its own
higher-timeframe bars, and the fitted HMM / fracdiff columns. Only the groups that produce a
selected column run. A rung is updated only when one of its bars completes: base bar t sees
the latest rung bar stamped T with ``T + tf <= t + base`` (the batch ladder's rule), so the
rung bar in progress is aggregated from the base bars as they come (open first, high / low
extremes, close last, volume with ``np.add.reduceat`` as :func:`resample_bars` sums it) and
between completions the rung's values are cached. Rungs below the base timeframe need the
source's finer bars, which a live loop of base bars does not have: they are refused.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factory.data.resample import resample_bars
from factory.errors import FactoryError
from factory.features.pipeline import FeaturePipeline, timeframe_label
from factory.features.registry import catalog
from factory.features.streaming import OHLCV, GroupSet
from factory.features.streaming_fitted import FracdiffStream, HMMStream


class Rung:
    """One ladder rung: its bar in progress and its groups' streams (values cached)."""

    def __init__(self, tf: pd.Timedelta, base: pd.Timedelta, groups: GroupSet) -> None:
        self.tf, self.base, self.groups = tf, base, groups
        self.label = timeframe_label(tf)
        self.tf_ns, self.base_ns = int(tf.value), int(base.value)

    def warm(self, bars: pd.DataFrame) -> None:
        self.unit, self.tz = bars.index.unit, bars.index.tz
        self.pending: list[tuple] = []
        self.bucket: int | None = None
        if len(bars) == 0:
            self.groups.warm(bars)
            self.values = dict.fromkeys(self.groups.names, np.nan)
            return
        htf = resample_bars(bars, self.tf, spacing=self.base)
        done = (htf.index + self.tf) <= bars.index[-1] + self.base
        complete = htf[done]
        self.groups.warm(complete.iloc[:-1])
        self.values = dict.fromkeys(self.groups.names, np.nan)  # no rung bar complete yet
        if len(complete):
            last = complete.iloc[-1]
            self.values = self.groups.step(last.to_dict(), complete.index[-1])
        if not done[-1]:  # the bar in progress: its base bars so far
            start = htf.index[-1]
            part = bars[bars.index >= start]
            self.bucket = int(start.value)
            self.pending = [tuple(row) for row in part[list(OHLCV)].to_numpy(np.float64)]

    def update(self, ts: pd.Timestamp, values: dict) -> dict[str, float]:
        """The rung's values seen by base bar ``ts`` (completing a rung bar when due)."""
        ns = int(ts.value)
        bucket = ns - ns % self.tf_ns
        if self.pending and bucket != self.bucket:
            self._complete()
        self.bucket = bucket
        self.pending.append(tuple(values[k] for k in OHLCV))
        if bucket + self.tf_ns <= ns + self.base_ns:
            self._complete()
        return self.values

    def _complete(self) -> None:
        part = np.asarray(self.pending, np.float64)
        bar = {"open": part[0, 0], "high": np.max(part[:, 1]), "low": np.min(part[:, 2]),
               "close": part[-1, 3], "volume": np.add.reduceat(part[:, 4], [0])[0]}
        stamp = pd.Timestamp(self.bucket, unit="ns", tz="UTC").as_unit(self.unit)
        if self.tz is not None:
            stamp = stamp.tz_convert(self.tz)
        self.values = self.groups.step(bar, stamp)
        self.pending = []


class FeatureStream:
    """The ``columns`` of one symbol's features, one bar at a time (see the module doc).

    ``pipeline``: the bundle's feature pipeline; ``fitted``: the symbol's fitted state
    (``{"hmm": ..., "fracdiff": ...}``); ``base``: the bars' timeframe.
    """

    def __init__(self, pipeline: FeaturePipeline, fitted: dict, columns: list[str],
                 base: pd.Timedelta) -> None:
        registry = catalog()
        self.columns, self.wanted = list(columns), set(columns)
        self.base = GroupSet(pipeline.groups, registry, self.wanted)
        self.rungs: list[Rung] = []
        mtf = {g: pipeline.groups[g] for g in pipeline.mtf_groups}
        for tf in pipeline.timeframes:
            if tf == base:
                continue
            suffix = f"_{timeframe_label(tf)}"
            wanted = {c[: -len(suffix)] for c in columns if c.endswith(suffix)}
            if not wanted:
                continue
            if tf < base:
                raise FactoryError(
                    f"feature columns {sorted(c for c in columns if c.endswith(suffix))[:3]}"
                    f"... come from the {timeframe_label(tf)} rung, built from the source's "
                    f"finer bars; streaming takes {timeframe_label(base)} bars only: predict "
                    f"these bars in batch (predict.mode=batch with the finer data), or train "
                    f"without rungs below the bar size (features.timeframes)")
            self.rungs.append(Rung(tf, base, GroupSet(mtf, registry, wanted)))
        self.fitted: list = []
        if "hmm" in fitted and self.wanted & set(HMMStream(fitted["hmm"]).columns):
            self.fitted.append(HMMStream(fitted["hmm"]))
        if "fracdiff" in fitted and "ffd_fitted" in self.wanted:
            self.fitted.append(FracdiffStream(fitted["fracdiff"]))

    @property
    def fallbacks(self) -> list[str]:
        """Groups streaming through the generic fallback (no streaming form)."""
        return sorted({*self.base.fallbacks, *(g for r in self.rungs for g in r.groups.fallbacks)})

    def warm(self, bars: pd.DataFrame) -> None:
        """Set every stream up from the history ``bars`` (OHLCV, time index)."""
        self.base.warm(bars)
        for rung in self.rungs:
            rung.warm(bars)
        for stream in self.fitted:
            stream.warm(bars)

    def update(self, ts: pd.Timestamp, values: dict) -> np.ndarray:
        """The float32 feature row of one new bar (``values``: OHLCV floats)."""
        out = self.base.step(values, ts)
        for rung in self.rungs:
            suffix = rung.label
            out.update({f"{k}_{suffix}": v for k, v in rung.update(ts, values).items()})
        for stream in self.fitted:
            out.update(stream.step(values["close"]))
        try:
            row = np.array([out[name] for name in self.columns], np.float64)
        except KeyError:
            missing = [c for c in self.columns if c not in out]
            raise FactoryError(f"feature column(s) {missing[:5]} of the bundle are not "
                               f"produced by its feature pipeline (a registry change since "
                               f"training?); retrain the model") from None
        return row.astype(np.float32)
