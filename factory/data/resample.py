"""OHLCV resampling to a coarser timeframe, vectorised.

Bins are left-closed and left-labelled (a bar is stamped by its open time, see
:mod:`factory.data.bars`) and anchored on the Unix epoch, i.e. on UTC midnight: 5-minute bins
start at :00, :05, ...; hourly bins at the top of each hour. A bin that contains no source bar
is omitted - it is a gap (market closed, feed outage), not a bar with zero volume.

The aggregation is done with ``numpy.ufunc.reduceat`` over the runs of equal bin labels of a
sorted index, so it costs a few passes over the arrays whatever the number of bars.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from factory.data.bars import OHLCV
from factory.errors import FactoryError

log = logging.getLogger(__name__)


def parse_timeframe(timeframe: str | pd.Timedelta, what: str = "data.timeframe") -> pd.Timedelta:
    """Parse ``"5min"``, ``"1h"``, ... into a positive :class:`pd.Timedelta`."""
    try:
        td = pd.Timedelta(timeframe)
    except (ValueError, TypeError) as exc:
        raise FactoryError(
            f"`{what}`: cannot parse timeframe {timeframe!r}. Fix: use a pandas offset string "
            f"such as `5min`, `15min` or `1h` (e.g. `{what}=5min`)"
        ) from exc
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise FactoryError(f"`{what}`: timeframe must be positive, got {timeframe!r}")
    return td


def infer_timeframe(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The modal spacing between consecutive timestamps (the bar size; gaps don't move it).

    Ties go to the smallest spacing. Raises :class:`FactoryError` with fewer than two
    timestamps or when no spacing is positive.
    """
    if len(index) < 2:
        raise FactoryError(
            f"cannot infer the bar timeframe from {len(index)} timestamp(s); need at least 2"
        )
    ns = pd.DatetimeIndex(index).as_unit("ns").asi8
    diffs = np.diff(ns)
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        raise FactoryError("cannot infer the bar timeframe: all timestamps are identical")
    values, counts = np.unique(diffs, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def resample_bars(
    bars: pd.DataFrame, timeframe: pd.Timedelta | str, label: str | None = None
) -> pd.DataFrame:
    """Aggregate OHLCV ``bars`` (sorted DatetimeIndex) into ``timeframe`` bins.

    open = first, high = max, low = min, close = last, volume = sum. Bins are left-closed,
    stamped by their open and anchored on the epoch (UTC midnight); empty bins are omitted.
    Returns ``bars`` itself when it already is at ``timeframe``. Raises :class:`FactoryError`
    when the source is coarser than ``timeframe`` or ``timeframe`` is not a whole multiple of
    the source spacing. ``label`` (e.g. ``"data.csv [MES]"``) prefixes error messages.
    """
    target = parse_timeframe(timeframe)
    where = f"{label}: " if label else ""
    missing = [c for c in OHLCV if c not in bars.columns]
    if missing:
        raise FactoryError(f"{where}cannot resample: missing column(s) {missing}")
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise FactoryError(f"{where}cannot resample: the index must be a DatetimeIndex")
    if len(bars) == 0:
        return bars
    if not bars.index.is_monotonic_increasing:
        raise FactoryError(f"{where}cannot resample: timestamps are not sorted ascending")

    if len(bars) >= 2:
        source = infer_timeframe(bars.index)
        if source == target:
            return bars
        if source > target:
            raise FactoryError(
                f"{where}the data is at {_fmt(source)} bars, coarser than the requested "
                f"timeframe {_fmt(target)}; bars cannot be split. Fix: set "
                f"`data.timeframe={_fmt(source)}` (or coarser)"
            )
        if target.value % source.value != 0:
            raise FactoryError(
                f"{where}the requested timeframe {_fmt(target)} is not a whole multiple of the "
                f"data's {_fmt(source)} bars, so source bars would straddle bins. Fix: pick a "
                f"multiple of {_fmt(source)} for `data.timeframe`"
            )

    index = bars.index
    ns = index.as_unit("ns").asi8
    step = target.value
    bins = ns - np.mod(ns, step)  # floor onto the epoch-anchored grid (np.mod >= 0)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    ends = np.r_[starts[1:], len(bins)] - 1

    o = bars["open"].to_numpy(dtype=np.float64)
    h = bars["high"].to_numpy(dtype=np.float64)
    lo = bars["low"].to_numpy(dtype=np.float64)
    c = bars["close"].to_numpy(dtype=np.float64)
    v = bars["volume"].to_numpy(dtype=np.float64)
    out_index = pd.DatetimeIndex(bins[starts].view("M8[ns]"), name="timestamp")
    if index.tz is not None:
        out_index = out_index.tz_localize("UTC").tz_convert(index.tz)
    out_index = out_index.as_unit(index.unit)
    out = pd.DataFrame(
        {
            "open": o[starts],
            "high": np.maximum.reduceat(h, starts),
            "low": np.minimum.reduceat(lo, starts),
            "close": c[ends],
            "volume": np.add.reduceat(v, starts),
        },
        index=out_index,
    )
    log.debug("%sresampled %d bars to %d %s bars", where, len(bars), len(out), _fmt(target))
    return out


def _fmt(td: pd.Timedelta) -> str:
    """Compact timeframe text: ``5min``, ``1h``, ``30s``."""
    minutes = td / pd.Timedelta(minutes=1)
    if minutes >= 60 and minutes % 60 == 0:
        return f"{int(minutes // 60)}h"
    if minutes >= 1 and minutes == int(minutes):
        return f"{int(minutes)}min"
    return f"{td.total_seconds():g}s"


format_timeframe = _fmt  # public name for messages and logs elsewhere in factory.data
