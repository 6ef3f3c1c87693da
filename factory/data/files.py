"""Bars from user files: :class:`CsvSource` and :class:`ParquetSource`.

``data.path`` is one file, a glob (``data/*_bt.csv``) or a directory (every ``.csv`` /
``.parquet`` file in it). A file holds one row per bar with a timestamp column, OHLCV columns
and optionally a symbol column (several symbols in one file). Without that column a file is
one symbol: ``data.symbol`` for a single file, else the part of the file name that the glob's
``*`` matches (``data/ES_bt.csv`` under ``data/*_bt.csv`` -> ``ES``) or, for a directory, the
file stem, upper-cased. Loading reads each file, maps the user's column names onto the
standard ones (``column_map`` first, then case-insensitive matches), validates each symbol of
each file on its own with :func:`factory.data.validate.validate_bars` (one clear
:class:`FactoryError` per problem, naming the file), and resamples each symbol to
``timeframe``. Rows are numbered 1-based from the first data row (the header is not counted)
in every message.

Symbols keep their own bars: nothing is aligned, added or forward-filled across symbols, so a
symbol whose session is closed (or whose history starts later) simply has no bars there. A
portfolio aligns symbols on the union of their timestamps without filling prices: a symbol
without a bar at a stamp has no price there and contributes a zero return (its position is
marked at its next bar), which is what the backtest's equal-weight book does.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import re
from pathlib import Path

import pandas as pd

from factory.data.bars import OHLCV, BarSet, make_instruments
from factory.data.resample import format_timeframe, infer_timeframe, parse_timeframe, resample_bars
from factory.data.ticks import is_tick_file, ticks_to_minute_bars
from factory.data.universes import select_symbols
from factory.data.validate import (
    check_timezone,
    normalise_columns,
    require_columns,
    validate_bars,
)
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
        symbols: list | str | None = None,
        timezone: str | None = None,
        column_map: dict | None = None,
        instruments: dict | None = None,
        default_instrument: dict | None = None,
        session_minutes: float = 1380.0,
        trading_days_per_year: float = 252.0,
        max_nan_run: int = 0,
        max_zero_volume_run: int | None = 30,
    ) -> None:
        if path is None or str(path).strip() == "":
            raise FactoryError(f"`data.path` is empty: pass the {self.kind} file, e.g. "
                               f"`data.path=/data/bars.{self.kind}`")
        self.pattern = str(path)
        self.path = _resolve_path(path)
        self.timeframe = parse_timeframe(timeframe)
        self.timestamp_column = str(timestamp_column)
        self.symbol_column = None if symbol_column in (None, "") else str(symbol_column)
        self.symbol = None if symbol in (None, "") else str(symbol)
        self.timezone = None if timezone in (None, "") else str(timezone)
        if self.timezone is not None:
            check_timezone(self.timezone)
        self.column_map = to_plain(column_map) or None
        self.instruments = to_plain(instruments) or {}
        self.default_instrument = to_plain(default_instrument)
        self.session_minutes = float(session_minutes)
        self.trading_days_per_year = float(trading_days_per_year)
        self.max_nan_run = int(max_nan_run)
        self.max_zero_volume_run = None if max_zero_volume_run is None else int(max_zero_volume_run)
        self.symbols = to_plain(symbols)
        for key, value in (("max_nan_run", self.max_nan_run),
                           ("max_zero_volume_run", self.max_zero_volume_run or 0)):
            if value < 0:
                raise FactoryError(f"`data.{key}` must be >= 0, got {value}")

    def _read(self, path: Path) -> pd.DataFrame:
        raise NotImplementedError

    def files(self) -> list[tuple[Path, str | None]]:
        """The files to read, each with the symbol its name gives (None: a single file, whose
        symbol comes from its column, ``data.symbol`` or its stem)."""
        text = str(self.path)
        if glob.has_magic(text):
            found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
            if not found:
                raise FactoryError(
                    f"no file matches `data.path={self.pattern}` ({text}). Fix: check the "
                    "pattern (relative paths are taken from the directory you launched from)")
            rx = _name_regex(self.path.name)
            return [(p, _symbol_from_name(p, rx)) for p in found]
        if not self.path.exists():
            raise FactoryError(
                f"data file not found: {text}. Fix: check `data.path` (relative paths are taken "
                "from the directory you launched from)"
            )
        if self.path.is_dir():
            found = sorted(p for p in self.path.iterdir()
                           if p.is_file() and p.suffix.lower() == f".{self.kind}")
            if not found:
                raise FactoryError(f"`data.path` is a directory without .{self.kind} files: "
                                   f"{text}. Fix: point it at the files (or a glob such as "
                                   f"`data.path='{text}/*.{self.kind}'`)")
            return [(p, p.stem.upper()) for p in found]
        return [(self.path, None)]

    def _wanted(self) -> set[str] | None:
        """Symbols asked for by ``data.symbols`` / ``data.symbol`` (None: all)."""
        names = self.symbols
        if names is None or names == "":
            return None if self.symbol is None else {self.symbol}
        names = names.split(",") if isinstance(names, str) else list(names)
        return {str(n).strip() for n in names if str(n).strip()}

    def _plan(self) -> list[tuple[Path, str | None]]:
        """:meth:`files` less those named for a symbol that ``data.symbols`` does not keep
        (a file with a symbol column is always read: its symbols are in its rows)."""
        files, wanted = self.files(), self._wanted()
        if wanted is None or len(files) == 1:
            return files
        return [(p, sym) for p, sym in files
                if sym in wanted or self._has_symbol_column(p)]

    def _has_symbol_column(self, path: Path) -> bool:
        if self.symbol_column is None:
            return False
        names = [str(c).strip().lower() for c in self._columns(path)]
        return self.symbol_column.lower() in names

    def _columns(self, path: Path) -> list:
        return list(self._read(path).columns)

    def fingerprint(self) -> dict:
        """Identity of the files' contents, so an edited file misses the Phase-1 cache."""
        try:
            plan = self._plan()
        except FactoryError:
            return {"path": str(self.path), "missing": True}
        digests = {}
        for path, _ in plan:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            digests[str(path)] = digest.hexdigest()
        if len(plan) == 1 and plan[0][1] is None:
            return {"path": str(self.path), "sha256": digests[str(self.path)]}
        return {"path": str(self.path), "files": digests}

    def load(self) -> BarSet:
        """Read, validate, split by symbol and resample; see the module docstring."""
        plan = self._plan()
        bars, fine, per_symbol, origin, rows_read = {}, {}, {}, {}, 0
        for path, name_symbol in plan:
            parts, n_rows = self._load_file(path, name_symbol)
            rows_read += n_rows
            for sym, (out, clean, info) in parts.items():
                if sym in origin:
                    raise FactoryError(
                        f"symbol {sym} is in two files: {origin[sym]} and {path}. Fix: one file "
                        "per symbol (or name the symbols apart in their symbol columns)")
                origin[sym] = path
                bars[sym], per_symbol[sym] = out, {"file": str(path), **info}
                if clean is not None:
                    fine[sym] = clean
        wanted = self._wanted()
        if wanted is not None:
            keep = select_symbols(sorted(bars), sorted(wanted),
                                  f"the data files of `data.path={self.pattern}`",
                                  fix="check `data.path`")
            bars = {s: bars[s] for s in keep}
            fine = {s: fine[s] for s in keep if s in fine}
            per_symbol = {s: per_symbol[s] for s in keep}
        try:
            instruments = make_instruments(self.instruments, sorted(bars),
                                           self.default_instrument)
        except FactoryError as exc:
            missing = next((s for s in sorted(bars) if s not in self.instruments), None)
            if missing is None or self.default_instrument is not None:
                raise
            raise FactoryError(f"{origin[missing]}: {exc}" + _naming_hint(plan)) from None
        report = {
            "source": str(self.path),
            "format": self.kind,
            "files": [str(p) for p, _ in plan],
            "rows_read": int(rows_read),
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

    def _load_file(self, path: Path, name_symbol: str | None) -> tuple[dict, int]:
        """One file: {symbol: (bars at timeframe, finer source bars or None, report)}."""
        src = str(path)
        raw = self._read(path)
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

        out = {}
        for sym, part in self._split(df, src, path, name_symbol).items():
            clean = validate_bars(
                part, src, sym, timestamp_column=self.timestamp_column,
                timezone=self.timezone, max_nan_run=self.max_nan_run,
                max_zero_volume_run=self.max_zero_volume_run,
            )
            dropped = int(clean.attrs.get("nan_rows_dropped", 0))
            native = infer_timeframe(clean.index) if len(clean) > 1 else None
            bars = resample_bars(clean, self.timeframe, label=f"{src} [{sym}]")
            bars.attrs = {}
            finer = None
            if native is not None and native < self.timeframe:
                clean.attrs = {}
                finer = clean
            info = {
                "rows": int(len(part)),
                "nan_rows_dropped": dropped,
                "source_timeframe": format_timeframe(native) if native is not None else None,
                "bars": int(len(bars)),
                "first": str(bars.index[0]),
                "last": str(bars.index[-1]),
            }
            log.info("%s [%s]: %d rows -> %d %s bars", src, sym, len(part), len(bars),
                     format_timeframe(self.timeframe))
            out[sym] = (bars, finer, info)
        return out, len(df)

    def _split(self, df: pd.DataFrame, src: str, path: Path,
               name_symbol: str | None) -> dict[str, pd.DataFrame]:
        """One frame per symbol, keeping the original row numbers as index."""
        col = self.symbol_column
        if col is None or col not in df.columns:
            sym = name_symbol or self.symbol or path.stem.upper()
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
        if self.symbol is not None and name_symbol is None:
            if self.symbol not in parts:
                raise FactoryError(
                    f"{src}: `data.symbol={self.symbol}` is not in column '{col}' "
                    f"(symbols: {sorted(parts)}). Fix: pick one of those or unset data.symbol"
                )
            parts = {self.symbol: parts[self.symbol]}
        return parts


def _name_regex(pattern: str) -> re.Pattern:
    """A regex of a glob's file-name part whose groups capture what each ``*`` / ``?`` matched."""
    out = []
    for ch in pattern:
        out.append("(.*)" if ch == "*" else "(.)" if ch == "?" else re.escape(ch))
    return re.compile("".join(out) + r"\Z")


def _symbol_from_name(path: Path, rx: re.Pattern) -> str:
    """The symbol a file name gives under its glob: the text its wildcards matched, or the stem
    when the wildcards are elsewhere in the path (upper-cased)."""
    match = rx.match(path.name)
    captured = "".join(match.groups()) if match else ""
    text = captured if captured and captured != path.name else path.stem
    if text.lower().endswith(path.suffix.lower()):
        text = text[: -len(path.suffix)]
    return text.upper()


def _naming_hint(plan: list[tuple[Path, str | None]]) -> str:
    if len(plan) == 1 and plan[0][1] is None:
        return " (a file without a symbol column is named by `data.symbol`, else its stem)"
    return (" (each file's symbol is the part of its name that the `*` of `data.path` "
            "matches, e.g. `data/*_bt.csv` gives ES for data/ES_bt.csv; or add a symbol column)")


class CsvSource(FileSource):
    """Bars from a CSV file (header row required)."""

    kind = "csv"

    def _columns(self, path: Path) -> list:
        try:
            return list(pd.read_csv(path, nrows=0, skipinitialspace=True).columns)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            return list(self._read(path).columns)  # raises the full message

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

    def _columns(self, path: Path) -> list:
        try:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        except (OSError, ValueError):
            return list(self._read(path).columns)  # raises the full message

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
