"""Ticks (trades) to 1-minute OHLCV bars, before the normal bar path.

A file is read as ticks when it has a ``price`` column and no ``close`` column. Each tick
is a trade: timestamp, price, and a size (``size``, ``qty`` or ``volume``; a count of 1 per
tick when none is present). Ticks may share a timestamp but must be in time order. They
are aggregated to 1-minute bars stamped by their open (first / max / min / last price, sum
of size), which then go through the same validation and resampling as bar files, and serve
as the ladder's finer bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factory.data.validate import _parse_timestamps
from factory.errors import FactoryError

SIZE_COLUMNS = ("size", "qty", "quantity", "volume")


def is_tick_file(columns) -> bool:
    names = {str(c).lower() for c in columns}
    return "price" in names and "close" not in names


def ticks_to_minute_bars(df: pd.DataFrame, src: str, timestamp_column: str,
                         symbol_column: str | None, timezone: str | None) -> pd.DataFrame:
    """1-minute bars (timestamp, [symbol], open, high, low, close, volume) from ticks."""
    lower = {str(c).lower(): c for c in df.columns}
    ts_col = lower.get(timestamp_column.lower())
    if ts_col is None:
        raise FactoryError(f"{src}: tick file has no '{timestamp_column}' column; columns found: "
                           f"{list(df.columns)}. Fix: set `data.timestamp_column`")
    rows = np.arange(1, len(df) + 1)
    when = _parse_timestamps(df[ts_col], src, ts_col, rows, timezone)
    price = pd.to_numeric(df[lower["price"]], errors="coerce").to_numpy(np.float64)
    size_col = next((lower[c] for c in SIZE_COLUMNS if c in lower), None)
    size = (np.ones(len(df)) if size_col is None
            else pd.to_numeric(df[size_col], errors="coerce").to_numpy(np.float64))
    for name, values, positive in (("price", price, True), (size_col or "size", size, False)):
        bad = np.flatnonzero(~np.isfinite(values) | ((values <= 0) if positive else (values < 0)))
        if bad.size:
            raise FactoryError(
                f"{src}: column '{name}' row {rows[bad[0]]}: invalid value "
                f"{df[lower.get(name, name)].iloc[bad[0]]!s} (must be a "
                f"{'positive' if positive else 'non-negative'} number). Fix the file")
    symbols = (df[lower[symbol_column.lower()]].astype(str).to_numpy()
               if symbol_column and symbol_column.lower() in lower else np.full(len(df), ""))
    frame = pd.DataFrame({"symbol": symbols, "when": when, "price": price, "size": size})
    out = []
    for sym, part in frame.groupby("symbol", sort=True):
        back = np.flatnonzero(part["when"].diff().lt(pd.Timedelta(0)).to_numpy())
        if back.size:
            i = part.index[back[0]]
            raise FactoryError(f"{src}: ticks out of time order at row {rows[i]} "
                               f"({when[i]}). Fix: sort the file by time")
        minute = part["when"].dt.floor("1min")
        grouped = part.groupby(minute.to_numpy(), sort=True)
        bars = pd.DataFrame({
            "open": grouped["price"].first(), "high": grouped["price"].max(),
            "low": grouped["price"].min(), "close": grouped["price"].last(),
            "volume": grouped["size"].sum()})
        bars.index = pd.DatetimeIndex(bars.index, tz="UTC", name=timestamp_column)
        bars = bars.reset_index()
        if symbol_column and sym:
            bars.insert(1, symbol_column, sym)
        out.append(bars)
    return pd.concat(out, ignore_index=True)
