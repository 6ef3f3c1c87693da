"""Validation of user-supplied bars, with error messages that say where and how to fix.

:func:`validate_bars` turns one symbol's raw rows (a ``timestamp`` column plus OHLCV columns,
as read from a file) into the canonical bar frame of :mod:`factory.data.bars`, or raises ONE
:class:`FactoryError` naming the file, the column, the row (1-based data row, the header not
counted) and its timestamp, the offending value, and the fix. Nothing is dropped silently: rows
with NaN values fail by default; ``max_nan_run > 0`` lets short NaN runs through, and those
rows are then dropped with a logged warning and counted in ``frame.attrs["nan_rows_dropped"]``.
"""

from __future__ import annotations

import difflib
import logging
import warnings

import numpy as np
import pandas as pd

from factory.data.bars import OHLCV
from factory.errors import FactoryError

log = logging.getLogger(__name__)

PRICES = ("open", "high", "low", "close")
_TS_FIX = "write timestamps as ISO-8601 text, e.g. `2024-01-02 14:30:00` or `2024-01-02T14:30:00Z`"


def normalise_columns(
    df: pd.DataFrame,
    source: str,
    wanted: list[str],
    column_map: dict | None = None,
) -> pd.DataFrame:
    """Rename columns: first by ``column_map`` (user name -> standard name), then any column
    equal to a ``wanted`` name up to case and surrounding whitespace."""
    df = df.rename(columns=lambda c: str(c).strip())
    if column_map:
        mapping = {str(k): str(v) for k, v in dict(column_map).items()}
        unknown = [k for k in mapping if k not in df.columns]
        if unknown:
            close = _closest(unknown[0], list(df.columns))
            hint = f" Did you mean '{close}'?" if close else ""
            raise FactoryError(
                f"{source}: `data.column_map` names column '{unknown[0]}', which is not in the "
                f"file (columns: {list(df.columns)}).{hint} Fix: use the file's exact header"
            )
        df = df.rename(columns=mapping)
    renames = {}
    for name in wanted:
        if name in df.columns:
            continue
        hits = [c for c in df.columns if c.lower() == name.lower() and c not in wanted]
        if len(hits) == 1:
            renames[hits[0]] = name
    return df.rename(columns=renames) if renames else df


def require_columns(df: pd.DataFrame, source: str, required: list[str]) -> None:
    """Raise one :class:`FactoryError` for the first missing column, suggesting a close name."""
    missing = [c for c in required if c not in df.columns]
    if not missing:
        return
    name = missing[0]
    spare = [str(c) for c in df.columns if c not in required]
    close = _closest(name, spare)
    hint = f" Did you mean '{close}'?" if close else ""
    user = close or "<yours>"
    fix = f"rename the column in the file or pass `data.column_map={{{user}: {name}}}`"
    if name not in OHLCV:
        fix += " (or point `data.timestamp_column` / `data.symbol_column` at it)"
    raise FactoryError(
        f"{source}: missing column '{name}'"
        + (f" (also missing: {missing[1:]})" if len(missing) > 1 else "")
        + f"; columns found: {list(df.columns)}.{hint} Fix: {fix}"
    )


def validate_bars(
    df: pd.DataFrame,
    source: str,
    symbol: str,
    *,
    timestamp_column: str = "timestamp",
    timezone: str | None = None,
    max_nan_run: int = 0,
    max_zero_volume_run: int | None = None,
) -> pd.DataFrame:
    """Validate one symbol's rows and return canonical bars (UTC ``timestamp`` index, float64
    OHLCV). Timestamps come from ``timestamp_column`` or, when absent, a DatetimeIndex. Row
    numbers in messages are the index labels (files use 1-based data rows) or positions + 1.
    ``max_zero_volume_run``: a longer run of consecutive zero-volume rows is an error (a feed
    or an export that fills closed hours with flat bars; a missing bar is a gap, not a bar
    with no trades); None: no limit."""
    where = f"{source} [{symbol}]"
    use_index = timestamp_column not in df.columns and isinstance(df.index, pd.DatetimeIndex)
    require_columns(df, source, list(OHLCV) + ([] if use_index else [timestamp_column]))
    if len(df) == 0:
        raise FactoryError(
            f"{where}: no data rows (the file is empty or has only a header). "
            "Fix: point `data.path` at a file with bars"
        )
    if use_index:
        rows = np.arange(1, len(df) + 1)
        raw_ts = pd.Series(df.index, index=rows)
        timestamp_column = df.index.name or "index"
    else:
        rows = np.asarray(df.index)
        raw_ts = df[timestamp_column]
    ts = _parse_timestamps(raw_ts, where, timestamp_column, rows, timezone)

    def at(i: int) -> str:
        return f"row {rows[i]} ({ts[i]})"

    cols = {c: _numeric(df[c], where, c, rows, ts) for c in OHLCV}
    nan_rows = np.zeros(len(df), dtype=bool)
    for arr in cols.values():
        nan_rows |= np.isnan(arr)
    dropped = 0
    if nan_rows.any():
        pos = np.flatnonzero(nan_rows)
        first = np.r_[True, np.diff(pos) != 1]
        starts = pos[first]
        lengths = np.diff(np.r_[np.flatnonzero(first), len(pos)])
        too_long = np.flatnonzero(lengths > max(int(max_nan_run), 0))
        if too_long.size:
            i, run = int(starts[too_long[0]]), int(lengths[too_long[0]])
            col = next(c for c in OHLCV if np.isnan(cols[c][i]))
            raise FactoryError(
                f"{where}: column '{col}' is NaN/empty at {at(i)}, the start of a run of {run} "
                f"row(s) with missing values (max allowed run: {int(max_nan_run)}). Fix: fill "
                "or remove those rows in the file, or let short runs through with "
                f"`data.max_nan_run={run}` (such rows are then dropped and reported)"
            )
        dropped = int(nan_rows.sum())
        log.warning(
            "%s: dropping %d row(s) with NaN values in %d run(s) of at most %d "
            "(data.max_nan_run=%d)", where, dropped, len(starts), lengths.max(), max_nan_run
        )
        keep = ~nan_rows
        rows, ts = rows[keep], ts[keep]
        cols = {c: a[keep] for c, a in cols.items()}

    ns = ts.asi8
    diffs = np.diff(ns)
    back = np.flatnonzero(diffs < 0)
    if back.size:
        i = int(back[0]) + 1
        raise FactoryError(
            f"{where}: column '{timestamp_column}' is not sorted: {at(i)} comes after "
            f"{at(i - 1)}. Fix: sort the file by time ascending"
        )
    dup = np.flatnonzero(diffs == 0)
    if dup.size:
        i = int(dup[0]) + 1
        raise FactoryError(
            f"{where}: column '{timestamp_column}' has a duplicate timestamp {ts[i]} at row "
            f"{rows[i]} (same as row {rows[i - 1]}). Fix: keep one bar per timestamp; if the "
            "file holds several symbols, name its symbol column with `data.symbol_column`"
        )
    for col in PRICES:
        bad = np.flatnonzero(cols[col] <= 0)
        if bad.size:
            i = int(bad[0])
            raise FactoryError(
                f"{where}: column '{col}' has a non-positive price {float(cols[col][i])!r} at "
                f"{at(i)}; "
                "prices must be > 0. Fix: correct or remove the row (for back-adjusted "
                "continuous contracts use ratio adjustment or add a constant offset)"
            )
    bad = np.flatnonzero(cols["volume"] < 0)
    if bad.size:
        i = int(bad[0])
        raise FactoryError(
            f"{where}: column 'volume' is negative ({float(cols['volume'][i])!r}) at {at(i)}. "
            "Fix: correct or remove the row; volume must be >= 0"
        )
    if max_zero_volume_run is not None:
        _check_zero_volume(cols["volume"], int(max_zero_volume_run), where, at)
    high, low = cols["high"], cols["low"]
    tol = 1e-9 * np.abs(high)
    bad = np.flatnonzero(high < low - tol)
    if bad.size:
        i = int(bad[0])
        raise FactoryError(
            f"{where}: column 'high' ({float(high[i])!r}) is below column 'low' "
            f"({float(low[i])!r}) at {at(i)}. Fix: check for swapped high/low columns or a "
            "bad print; correct or remove the row"
        )
    for col in ("open", "close"):
        v = cols[col]
        bad = np.flatnonzero((v < low - tol) | (v > high + tol))
        if bad.size:
            i = int(bad[0])
            raise FactoryError(
                f"{where}: column '{col}' ({float(v[i])!r}) is outside [low, high] = "
                f"[{float(low[i])!r}, {float(high[i])!r}] at {at(i)}. Fix: correct or remove "
                "the row (or map the columns correctly with `data.column_map`)"
            )
    # Absorb float noise within the tolerance so that high >= max(open, close) exactly.
    cols["high"] = np.maximum.reduce([high, cols["open"], cols["close"]])
    cols["low"] = np.minimum.reduce([low, cols["open"], cols["close"]])
    out = pd.DataFrame(cols, index=pd.DatetimeIndex(ts, name="timestamp"))
    out.attrs["nan_rows_dropped"] = dropped
    return out


def _check_zero_volume(volume: np.ndarray, limit: int, where: str, at) -> None:
    """Raise for the first run of more than ``limit`` consecutive zero-volume rows."""
    zero = volume == 0
    if zero.sum() <= limit:
        return
    edges = np.diff(np.r_[0, zero.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = np.flatnonzero(ends - starts > limit)
    if long.size:
        i, run = int(starts[long[0]]), int(ends[long[0]] - starts[long[0]])
        raise FactoryError(
            f"{where}: column 'volume' is 0 on {run} consecutive rows from {at(i)} (max allowed "
            f"run: {limit}): bars without trades, as a feed fills closed hours or outages. Fix: "
            "remove those rows from the file (a missing bar is a gap, not a zero-volume bar), "
            f"or allow such runs with `data.max_zero_volume_run={run}`"
        )


def _numeric(raw: pd.Series, where: str, col: str, rows: np.ndarray, ts: pd.Index) -> np.ndarray:
    """Float64 values of one column; non-numeric or infinite entries raise."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        num = pd.Series(np.full(len(raw), np.inf))
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        num = raw
    else:
        num = pd.to_numeric(raw, errors="coerce")
    arr = num.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero((np.isnan(arr) & raw.notna().to_numpy()) | np.isinf(arr))
    if bad.size:
        i = int(bad[0])
        value = raw.iloc[i]
        value = value.item() if hasattr(value, "item") else value  # np.True_ -> True
        raise FactoryError(
            f"{where}: column '{col}' has a non-numeric value {value!r} at row {rows[i]} "
            f"({ts[i]}). Fix: correct or remove the row; numbers must be plain decimals "
            "('.' as decimal point, no thousands separators or units)"
        )
    return arr


def _to_datetime(raw: pd.Series, **kwargs) -> pd.Series:
    try:
        return pd.to_datetime(raw, errors="coerce", **kwargs)
    except ValueError as exc:  # mixed UTC offsets: only representable as one UTC series
        if "timezone" not in str(exc).lower():
            raise
        return pd.to_datetime(raw, errors="coerce", utc=True, **kwargs)


def _parse_timestamps(
    raw: pd.Series, where: str, col: str, rows: np.ndarray, timezone: str | None
) -> pd.DatetimeIndex:
    """Parse, localise naive times with ``timezone`` and return a UTC ns DatetimeIndex."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = raw
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        raise FactoryError(
            f"{where}: column '{col}' holds numbers ({raw.iloc[0]!r} at row {rows[0]}), not "
            f"date-times. Fix: {_TS_FIX}"
        )
    else:
        parsed = _to_datetime(raw, format="ISO8601")
        if (parsed.isna() & raw.notna()).any():
            with warnings.catch_warnings():  # "could not infer format" is expected here
                warnings.simplefilter("ignore", UserWarning)
                alt = _to_datetime(raw)
            if alt.isna().sum() < parsed.isna().sum():
                parsed = alt
    idx = pd.DatetimeIndex(parsed)
    nat = np.flatnonzero(idx.isna())
    if nat.size:
        i = int(nat[0])
        value = raw.iloc[i]
        what = "is empty" if pd.isna(value) else f"has an unparseable timestamp {value!r}"
        raise FactoryError(f"{where}: column '{col}' {what} at row {rows[i]}. Fix: {_TS_FIX}")
    if idx.tz is None:
        if timezone is None:
            raise FactoryError(
                f"{where}: column '{col}' has timestamps without a timezone (row {rows[0]}: "
                f"{raw.iloc[0]!s}) and none is configured. Fix: pass the exchange/export "
                "timezone, e.g. `data.timezone=America/Chicago` (or `data.timezone=UTC`), or "
                "write offsets into the timestamps"
            )
        check_timezone(timezone, f"{where}: ")
        try:
            idx = idx.tz_localize(timezone, ambiguous="infer", nonexistent="raise")
        except ValueError as exc:
            raise FactoryError(
                f"{where}: column '{col}': local times in {timezone} cannot be mapped to UTC "
                f"around a daylight-saving change ({exc}). Fix: export UTC timestamps (or with "
                "offsets) and set `data.timezone=UTC`"
            ) from exc
    return idx.tz_convert("UTC").as_unit("ns")


def check_timezone(timezone: str, where: str = "") -> None:
    """Raise for a name that is not an IANA timezone (``data.timezone``)."""
    try:
        pd.Timestamp("2000-01-01").tz_localize(timezone)
    except (KeyError, ValueError, TypeError) as exc:
        raise FactoryError(
            f"{where}unknown timezone `data.timezone={timezone}`. Fix: use an IANA name such as "
            "America/Chicago, America/New_York, Europe/London or UTC"
        ) from exc


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``name`` (case-insensitive, difflib), or None."""
    lower = {str(c).lower(): str(c) for c in candidates}
    hit = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return lower[hit[0]] if hit else None
