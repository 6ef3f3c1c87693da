"""A data source that serves another source's bars between two stamps: the trailing window a
walk-forward refit trains on.

``task=simulate`` with ``sim.retrain_every`` refits the bundle's pipeline (Phase 1 and the
predictor) on the bars seen so far. The refit runs the ordinary training function on the
bundle's own training config, with ``data`` replaced by this source wrapped around the
replay's data node, so every step (data validation, features, labels, splits, fitted
state, the predictor, the bundle) is the training code, and its Phase-1 cache key names the
window. Every working bar kept starts in ``[start, end)``; finer bars (the ladder's rungs
below the working timeframe) are cut at the same stamps.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from factory.data.bars import BarSet
from factory.errors import FactoryError


def _stamp(value) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class WindowSource:
    """``source``'s bars whose open stamp is in ``[start, end)`` (either bound may be null).

    Parameters
    ----------
    source: the data source to read (a built source: Hydra instantiates the node).
    start, end: UTC stamps (ISO strings); ``end`` is excluded.
    """

    def __init__(self, source, start: str | None = None, end: str | None = None) -> None:
        if not hasattr(source, "load"):
            raise FactoryError(f"WindowSource: `source` must be a data source node with a "
                               f"_target_, got {type(source).__name__}")
        self.source, self.start, self.end = source, _stamp(start), _stamp(end)
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise FactoryError(f"WindowSource: start {self.start} is not before end {self.end}")

    def fingerprint(self) -> dict | None:
        """The wrapped source's content fingerprint (file sources), for the Phase-1 key."""
        inner = getattr(self.source, "fingerprint", None)
        return inner() if inner is not None else None

    def _cut(self, frame: pd.DataFrame) -> pd.DataFrame:
        keep = pd.Series(True, index=frame.index)
        if self.start is not None:
            keep &= frame.index >= self.start
        if self.end is not None:
            keep &= frame.index < self.end
        return frame.loc[keep.to_numpy()]

    def load(self) -> BarSet:
        full = self.source.load()
        bars = {s: self._cut(b) for s, b in full.bars.items()}
        empty = sorted(s for s, b in bars.items() if b.empty)
        if empty:
            raise FactoryError(f"the window [{self.start}, {self.end}) holds no bars of "
                               f"{empty}; widen `sim.retrain_window` or cut later")
        report = {**full.report, "window": {"start": str(self.start), "end": str(self.end),
                                            "bars": {s: len(b) for s, b in bars.items()}}}
        return replace(full, bars=bars, fine={s: self._cut(f) for s, f in full.fine.items()},
                       report=report)
