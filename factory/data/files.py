"""Bars from user files: :class:`CsvSource` and :class:`ParquetSource`.

A file holds one row per bar with a timestamp column, OHLCV columns and optionally a symbol
column (several symbols in one file). Loading reads the file, maps the user's column names
onto the standard ones (``column_map`` first, then case-insensitive matches), validates each
symbol with :func:`factory.data.validate.validate_bars` (one clear :class:`FactoryError` per
problem), and resamples each symbol to ``timeframe``. Rows are numbered 1-based from the first
data row (the header is not counted) in every message.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd

from factory.data.bars import OHLCV, BarSet, make_instruments
from factory.data.resample import infer_timeframe, parse_timeframe, resample_bars
from factory.data.ticks import is_tick_file, ticks_to_minute_bars
from factory.data.validate import normalise_columns, require_columns, validate_bars
from factory.errors import FactoryError

log = logging.getLogger(__name__)


def to_plain(value: object) -> object:
    """OmegaConf containers -> plain dicts/lists (other values unchanged)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf ships with hydra-core
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _resolve_path(path: str) -> Path:
    """Absolute path; relative paths are taken from the launch directory under Hydra."""
    p = Path(str(path)).expanduser()
    if p.is_absolute():
        return p
    try:
        from hydra.utils import to_absolute_path

        return Path(to_absolute_path(str(p)))
    except ImportError:  # pragma: no cover - hydra-core is a dependency
        return p.resolve()


class FileSource:
    """Shared loading logic; subclasses implement :meth:`_read` for one file format."""

    kind = "file"

    def __init__(
        self,
        path: str,
        timeframe: str = "5min",
        timestamp_column: str = "timestamp",
        symbol_column: str | None = "symbol",
        symbol: str | None = None,
        timezone: str | None = None,
        column_map: dict | None = None,
        instruments: dict | None = None,
        default_instrument: dict | None = None,
        session_minutes: float = 1380.0,
        trading_days_per_year: float = 252.0,
        max_nan_run: int = 0,
    ) -> None:
        if path is None or str(path).strip() == "":
            raise FactoryError(f"`data.path` is empty: pass the {self.kind} file, e.g. "
                               f"`data.path=/data/bars.{self.kind}`")
        self.path = _resolve_path(path)
        self.timeframe = parse_timeframe(timeframe)
        self.timestamp_column = str(timestamp_column)
        self.symbol_column = None if symbol_column in (None, "") else str(symbol_column)
        self.symbol = None if symbol in (None, "") else str(symbol)
        self.timezone = None if timezone in (None, "") else str(timezone)
        self.column_map = to_plain(column_map) or None
        self.instruments = to_plain(instruments) or {}
        self.default_instrument = to_plain(default_instrument)
        self.session_minutes = float(session_minutes)
        self.trading_days_per_year = float(trading_days_per_year)
        self.max_nan_run = int(max_nan_run)

    def _read(self, path: Path) -> pd.DataFrame:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """Identity of the file's contents, so an edited file misses the Phase-1 cache."""
        if not self.path.is_file():
            return {"path": str(self.path), "missing": True}
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return {"path": str(self.path), "sha256": digest.hexdigest()}

    def load(self) -> BarSet:
        """Read, validate, split by symbol and resample; see the module docstring."""
        src = str(self.path)
        if not self.path.exists():
            raise FactoryError(
                f"data file not found: {src}. Fix: check `data.path` (relative paths are taken "
                "from the directory you launched from)"
            )
        if self.path.is_dir():
            raise FactoryError(f"`data.path` is a directory, not a file: {src}")
        raw = self._read(self.path)
        if raw.index.name == self.timestamp_column or (
            isinstance(raw.index, pd.DatetimeIndex) and self.timestamp_column not in raw.columns
        ):
            name = raw.index.name or "index"
            raw = raw.reset_index().rename(columns={name: self.timestamp_column})
        if is_tick_file(raw.columns) and len(raw):
            raw = ticks_to_minute_bars(raw, src, self.timestamp_column, self.symbol_column,
                                       self.timezone)
        wanted = [self.timestamp_column, *OHLCV]
        if self.symbol_column:
            wanted.append(self.symbol_column)
        df = normalise_columns(raw, src, wanted, self.column_map)
        if len(df) == 0:
            raise FactoryError(
                f"{src}: the file has column names but no data rows. Fix: point `data.path` at a "
                "file with bars"
            )
        require_columns(df, src, [self.timestamp_column, *OHLCV])
        df.index = pd.RangeIndex(1, len(df) + 1)  # 1-based data rows for messages

        parts = self._split(df, src)
        bars, fine, per_symbol = {}, {}, {}
        for sym, part in parts.items():
            clean = validate_bars(
                part, src, sym, timestamp_column=self.timestamp_column,
                timezone=self.timezone, max_nan_run=self.max_nan_run,
            )
            dropped = int(clean.attrs.get("nan_rows_dropped", 0))
            native = infer_timeframe(clean.index) if len(clean) > 1 else None
            out = resample_bars(clean, self.timeframe, label=f"{src} [{sym}]")
            out.attrs = {}
            bars[sym] = out
            if native is not None and native < self.timeframe:
                clean.attrs = {}
                fine[sym] = clean
            per_symbol[sym] = {
                "rows": int(len(part)),
                "nan_rows_dropped": dropped,
                "source_timeframe": str(native) if native is not None else None,
                "bars": int(len(out)),
                "first": str(out.index[0]),
                "last": str(out.index[-1]),
            }
            log.info("%s [%s]: %d rows -> %d %s bars", src, sym, len(part), len(out),
                     self.timeframe)
        instruments = make_instruments(self.instruments, sorted(bars), self.default_instrument)
        report = {
            "source": src,
            "format": self.kind,
            "rows_read": int(len(df)),
            "bars": int(sum(len(b) for b in bars.values())),
            "per_symbol": per_symbol,
        }
        return BarSet(
            bars=bars,
            instruments=instruments,
            timeframe=self.timeframe,
            session_minutes=self.session_minutes,
            trading_days_per_year=self.trading_days_per_year,
            report=report,
            fine=fine,
        )

    def _split(self, df: pd.DataFrame, src: str) -> dict[str, pd.DataFrame]:
        """One frame per symbol, keeping the original row numbers as index."""
        col = self.symbol_column
        if col is None or col not in df.columns:
            sym = self.symbol or self.path.stem.upper()
            log.info("%s: no symbol column '%s'; all rows are symbol %s", src, col, sym)
            return {sym: df}
        names = df[col]
        missing = names.isna().to_numpy() | (names.astype(str).str.strip() == "").to_numpy()
        if missing.any():
            row = int(df.index[missing.argmax()])
            raise FactoryError(
                f"{src}: column '{col}' is empty at row {row}. Fix: fill in the symbol on "
                "every row (or drop the column and set `data.symbol`)"
            )
        names = names.astype(str).str.strip()
        parts = {str(s): g for s, g in df.groupby(names.to_numpy(), sort=True)}
        if self.symbol is not None:
            if self.symbol not in parts:
                raise FactoryError(
                    f"{src}: `data.symbol={self.symbol}` is not in column '{col}' "
                    f"(symbols: {sorted(parts)}). Fix: pick one of those or unset data.symbol"
                )
            parts = {self.symbol: parts[self.symbol]}
        return parts


class CsvSource(FileSource):
    """Bars from a CSV file (header row required)."""

    kind = "csv"

    def _read(self, path: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(path, skipinitialspace=True)
        except pd.errors.EmptyDataError as exc:
            raise FactoryError(
                f"{path}: the file is empty (no header, no rows). Fix: point `data.path` at a "
                "CSV with a header `timestamp,open,high,low,close,volume` and bars"
            ) from exc
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise FactoryError(
                f"{path}: not a readable CSV file ({exc}). Fix: export plain comma-separated "
                "UTF-8 text with one header row"
            ) from exc


class ParquetSource(FileSource):
    """Bars from a Parquet file (a DatetimeIndex named like the timestamp column is fine)."""

    kind = "parquet"

    def _read(self, path: Path) -> pd.DataFrame:
        if path.stat().st_size == 0:
            raise FactoryError(f"{path}: the file is empty. Fix: point `data.path` at bars")
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid subclasses ValueError
            raise FactoryError(
                f"{path}: not a readable Parquet file ({exc}). Fix: write it with "
                "`DataFrame.to_parquet`"
            ) from exc
