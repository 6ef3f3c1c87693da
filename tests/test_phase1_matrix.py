"""The in-place feature matrix of Phase 1 (factory/features/matrix.py) and what rests on it:
float32 values exactly as numpy casts them, NaN counts and finite masks in the same pass,
rows and columns dropped in place without disturbing a frame still in use, the feature
threads changing nothing, the fast parquet of X and its reader giving pandas' frame, and
symbols whose ladders differ (one without finer bars) filling the other's columns with NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import factory.features.pipeline as pipeline
from factory.config import build
from factory.data.synthetic import SyntheticSource
from factory.dataset import read_features, write_features
from factory.features.matrix import ColumnMatrix
from factory.features.pipeline import FeaturePipeline
from factory.phase1 import build_dataset


def _values(n: int = 1000) -> np.ndarray:
    v = np.random.default_rng(0).standard_normal(n) * 1e3
    v[[3, 50, 51]] = np.nan
    v[7], v[8], v[9] = np.inf, 1e300, -1e300  # the last two overflow float32
    v[10] = 1 + 2.0 ** -30  # rounds in the cast
    return v


def test_put_casts_like_numpy_and_counts_in_the_same_pass():
    v = _values()
    m = ColumnMatrix(len(v), capacity=2)
    finite = np.ones(len(v), bool)
    with np.errstate(over="ignore"):
        expect = np.asarray(v, np.float32)
    assert m.put("a", v, 0, finite) == 3
    m.put("b", np.arange(len(v)), 0, finite)  # ints: cast straight to float32
    m.put("c", expect[::-1], 0, finite)  # grows past the capacity
    X = m.frame()
    assert X["a"].to_numpy().tobytes() == expect.tobytes()
    assert X["b"].to_numpy().tobytes() == np.arange(len(v), dtype=np.float32).tobytes()
    assert X.to_numpy().flags.f_contiguous and X.dtypes.unique().tolist() == [np.float32]
    bad = ~np.isfinite(expect) | ~np.isfinite(expect[::-1])
    np.testing.assert_array_equal(finite, ~bad)


def test_segments_gather_rows_and_columns_in_place():
    m = ColumnMatrix(10)
    finite = np.ones(6, bool)
    m.put("a", np.arange(6.0), 0)
    m.put("b", np.arange(4.0) + 10, 6)  # second segment only: NaN in the first
    pos = np.array([-1, -1, 0, 0, 1, 2])
    assert m.put_gather("c", np.array([7.0, 8.0, 9.0]), pos, 2, 0, finite) == 2
    np.testing.assert_array_equal(finite, [False, False, True, True, True, True])
    X = m.frame()
    np.testing.assert_array_equal(X["b"], [np.nan] * 6 + [10, 11, 12, 13])
    np.testing.assert_array_equal(X["a"].to_numpy()[6:], [np.nan] * 4)
    np.testing.assert_array_equal(X["c"].to_numpy()[:6], [np.nan, np.nan, 7, 7, 8, 9])
    before = X.copy()
    m.keep_rows(np.array([1, 2, 5, 7]))  # a frame is alive: it keeps its data
    m.keep_columns(["a", "c"])
    pd.testing.assert_frame_equal(X, before)
    del X, before
    m.keep_rows(np.array([0, 2, 3]))  # nothing views the buffer now: moved in place
    Y = m.frame()
    assert Y.columns.tolist() == ["a", "c"]
    np.testing.assert_array_equal(Y["a"], [1, 5, np.nan])
    np.testing.assert_array_equal(Y["c"], [np.nan, 9, np.nan])
    with pytest.raises(ValueError, match="matrix order"):
        m.keep_columns(["c", "a"])
    del Y
    m.keep_rows(np.array([1, 2]))  # one run of rows: memmoved
    np.testing.assert_array_equal(m.frame().to_numpy(), [[5, 9], [np.nan, np.nan]])


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return SyntheticSource(days=8, seed=3).load().bars["MES"]


def test_feature_threads_change_nothing(bars, monkeypatch):
    pipe = FeaturePipeline("all", timeframes=["15min", "1h"], mtf_groups=["returns", "rsi"])
    serial = pipe.transform(bars, pd.Timedelta("5min"))
    monkeypatch.setattr(pipeline, "MIN_BARS_PER_THREAD", 1)
    monkeypatch.setattr(pipeline, "resolve_threads", lambda: 3)
    monkeypatch.setattr(pipeline.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # idle cores
    monkeypatch.setattr(pipeline, "TRIM_EVERY", 2)
    assert pipeline._threads(len(bars)) == 3
    threaded = pipe.transform(bars, pd.Timedelta("5min"))
    assert threaded.columns.tolist() == serial.columns.tolist()
    assert threaded.to_numpy().tobytes() == serial.to_numpy().tobytes()


def test_fast_parquet_of_x_reads_back_equal(tmp_path):
    X = ColumnMatrix(500)
    for j, v in enumerate((_values(500), np.arange(500.0), np.zeros(500))):
        with np.errstate(over="ignore"):
            X.put(f"f{j}", v)
    frame = X.frame()
    write_features(frame, tmp_path / "X.parquet")
    frame.to_parquet(tmp_path / "X_pandas.parquet")  # caches written before: nullable, dict
    for file in ("X.parquet", "X_pandas.parquet"):
        back = pd.read_parquet(tmp_path / file)
        assert back.columns.tolist() == frame.columns.tolist()
        assert isinstance(back.index, pd.RangeIndex) and len(back) == 500
        fast = read_features(tmp_path / file)  # Dataset.load's reader: the same frame
        pd.testing.assert_frame_equal(fast, back, check_exact=True)
        assert fast.to_numpy().tobytes() == back.to_numpy().tobytes()
    raw = pd.read_parquet(tmp_path / "X.parquet").to_numpy()
    assert raw.tobytes() == frame.to_numpy().tobytes()  # NaN payloads too
    other = pd.DataFrame({"a": np.arange(3.0), "b": [1, 2, 3]}, index=[5, 6, 7])
    write_features(other, tmp_path / "other.parquet")  # not float32 / RangeIndex: pandas
    pd.testing.assert_frame_equal(read_features(tmp_path / "other.parquet"), other)


def test_symbol_without_finer_bars_gets_nan_in_the_finer_rung(make_cfg):
    cfg = make_cfg("data.days=60")
    barset = build(cfg.data).load()
    barset.fine.pop("MGC")  # MES has its minutes, MGC not: its 1m rung is skipped
    features = FeaturePipeline({"returns": {"lags": [1]}}, timeframes=["1min", "1h"],
                               mtf_groups=["returns"])
    ds = build_dataset(barset, features, build(cfg.labeling), build(cfg.cv))
    assert ds.X.columns.tolist() == ["ret_1", "ret_1_1m", "ret_1_1h"]
    mes = ds.meta["symbol"].to_numpy() == "MES"
    assert np.isfinite(ds.X.to_numpy()[mes]).all()
    assert np.isnan(ds.X["ret_1_1m"].to_numpy()[~mes]).all()
    assert np.isfinite(ds.X[["ret_1", "ret_1_1h"]].to_numpy()[~mes]).all()
    report = ds.info["report"]["symbols"]
    assert report["MGC"]["ladder_rungs_skipped"] == ["1m"] and "ret_1_1m" not in \
        report["MGC"]["nan_share"] and report["MES"]["nan_share"]["ret_1_1m"] >= 0
