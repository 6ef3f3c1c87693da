"""The Phase-1 output: features, labels with end times, weights, splits, and the bars.

Rows are labelled bars of every symbol, sorted by (symbol, timestamp). ``X`` and ``meta``
share a RangeIndex. ``meta`` columns:

=========== ============================================================================
timestamp   bar open time (UTC); the decision is taken at this bar's close
symbol      instrument symbol
bar_idx     position of the bar within its symbol's bars (``bars[symbol]``)
exit_idx    position of the exit bar (label end); ``t1`` is its timestamp
label       -1 / 0 / 1 (triple barrier, net of costs)
ret_long    gross return of a long trade entered at the next bar's open, exited at touch
ret_short   same for a short trade
cost        round-trip cost as a return on the entry price
touch       1 upper, -1 lower, 0 vertical, 2 ambiguous
barrier_up  upper / lower barrier distance as a return on the decision bar's close
barrier_dn  (ATR x multiplier / close, known at the bar: the label's geometry)
split       train / val / test / gap (gap = purged or embargoed)
weight      average uniqueness within the row's symbol and split (0 for gap rows)
=========== ============================================================================
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from factory.data.bars import Instrument
from factory.features.matrix import ColumnMatrix

# The class vocabulary, defined here once and imported everywhere: labels, the column order of
# every probability array (p_short, p_flat, p_long) and the names reports print.
CLASSES = (-1, 0, 1)
N_CLASSES = len(CLASSES)
CLASS_NAMES = ("short", "flat", "long")
PROBA_COLUMNS = ["p_short", "p_flat", "p_long"]


def labels_to_index(labels) -> np.ndarray:
    """Labels -1/0/1 -> class indices 0/1/2 (the column order of probabilities)."""
    return (np.asarray(labels, np.int64) - CLASSES[0]).astype(np.int64)


def class_positions(classes) -> np.ndarray:
    """Column of each of ``classes`` (labels a model saw) in the fixed :data:`CLASSES` order."""
    classes = np.asarray(classes)
    missing = [c for c in classes.tolist() if c not in CLASSES]
    if missing:
        raise ValueError(f"labels {missing} are not in the class vocabulary {CLASSES}")
    return labels_to_index(classes)


def place_columns(proba: np.ndarray, positions, n_columns: int = N_CLASSES) -> np.ndarray:
    """Columns of ``proba`` moved to ``positions`` of an ``n_columns`` array (3: the class
    vocabulary); an absent class gets probability 0 and rows are renormalised to sum to 1."""
    proba = np.asarray(proba, np.float64)
    out = np.zeros((len(proba), n_columns))
    out[:, np.asarray(positions, np.int64)] = proba
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def full_proba(proba: np.ndarray, classes) -> np.ndarray:
    """Probabilities over ``classes`` (the labels a model saw, its ``classes_``) in the 3
    fixed :data:`CLASSES` columns; a class the model never saw gets probability 0."""
    return place_columns(proba, class_positions(classes))


def write_features(X: pd.DataFrame, file: Path) -> None:
    """``X`` as parquet, fast: the Arrow columns wrap the frame's own arrays (no copy; NaN
    stays NaN), columns without nulls are stored as required (no definition levels: a
    third of the encoding work, and much faster to read), no dictionary encoding (float
    features barely repeat, and trying it costs more than the rest of the write), no column
    statistics, LZ4 pages. ``pd.read_parquet`` reads it like any pandas parquet (the pandas
    metadata is kept)."""
    options = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}
    numeric = all(isinstance(t, np.dtype) and t.kind in "fiub" for t in X.dtypes)
    if not numeric or not isinstance(X.index, pd.RangeIndex):  # pandas' own conversion
        X.to_parquet(file, **options)
        return
    schema = pa.Schema.from_pandas(X, preserve_index=None)
    arrays = [pa.array(X.iloc[:, j].to_numpy(), type=schema.field(j).type)
              for j in range(X.shape[1])]
    schema = pa.schema([f.with_nullable(a.null_count > 0) for f, a in zip(schema, arrays,
                                                                          strict=True)],
                       metadata=schema.metadata)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), file, **options)


def read_features(file: Path) -> pd.DataFrame:
    """``pd.read_parquet(file)`` for a float32 ``X`` with a RangeIndex (any writer's, old
    caches included), column by column into one :class:`ColumnMatrix`: the same frame
    with one copy of the matrix in memory where Arrow's table plus pandas' conversion held
    two. Anything else goes to ``pd.read_parquet``."""
    parquet = pq.ParquetFile(file)
    schema = parquet.schema_arrow
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    ranged = len(index) == 1 and isinstance(index[0], dict) and index[0].get("kind") == "range"
    names = schema.names
    if (not ranged or len(set(names)) != len(names)
            or not all(f.type == pa.float32() for f in schema)):
        return pd.read_parquet(file)
    n = parquet.metadata.num_rows
    matrix = ColumnMatrix(n, capacity=max(len(names), 1))
    for name in names:
        matrix.put(name, parquet.read(columns=[name]).column(0).to_numpy())
    start, step = index[0]["start"], index[0]["step"]
    frame = matrix.frame(pd.RangeIndex(start, start + n * step, step, name=index[0]["name"]))
    return frame


@dataclass
class Dataset:
    X: pd.DataFrame
    meta: pd.DataFrame
    bars: dict[str, pd.DataFrame]
    instruments: dict[str, Instrument]
    info: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.X.columns)

    @property
    def horizon(self) -> int:
        return int(self.info["horizon"])

    @property
    def bars_per_year(self) -> float:
        return float(self.info["bars_per_year"])

    def matrix(self) -> np.ndarray:
        """``X`` as one float32 array, converted once and shared by every adapter call."""
        cached = self.__dict__.get("_matrix")
        if cached is None or cached[0] is not self.X:
            cached = (self.X, self.X.to_numpy(np.float32))
            self.__dict__["_matrix"] = cached
        return cached[1]

    def label_index(self, rows: np.ndarray) -> np.ndarray | None:
        """Class indices (0..2) of ``rows``, or None for a dataset of new bars (no labels)."""
        if "label" not in self.meta:
            return None
        return labels_to_index(self.meta["label"].to_numpy()[rows])

    def rows(self, split: str) -> np.ndarray:
        """Row positions of one split, in (symbol, time) order."""
        return np.flatnonzero(self.meta["split"].to_numpy() == split)

    def save(self, path: Path) -> None:
        """Write ``X.parquet``, ``meta.parquet``, ``bars/<symbol>.parquet`` and ``info.json``
        (read back by :meth:`load`). ``X`` goes on its own thread (parquet encoding releases
        the GIL) while this one writes the rest."""
        path = Path(path)
        (path / "bars").mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(1, thread_name_prefix="save-X") as pool:
            features = pool.submit(write_features, self.X, path / "X.parquet")
            self.meta.to_parquet(path / "meta.parquet")
            for sym, frame in self.bars.items():
                frame.to_parquet(path / "bars" / f"{sym}.parquet")
            instruments = {s: vars(i) for s, i in self.instruments.items()}
            info = {**self.info, "instruments": instruments}
            (path / "info.json").write_text(json.dumps(info, indent=2, default=str))
            features.result()

    @classmethod
    def load(cls, path: Path) -> Dataset:
        path = Path(path)
        info = json.loads((path / "info.json").read_text())
        instruments = {s: Instrument(**v) for s, v in info.pop("instruments").items()}
        bars = {s: pd.read_parquet(path / "bars" / f"{s}.parquet") for s in instruments}
        return cls(
            X=read_features(path / "X.parquet"),
            meta=pd.read_parquet(path / "meta.parquet"),
            bars=bars,
            instruments=instruments,
            info=info,
        )
