"""Tick files: trades aggregated to 1-minute bars, then the normal bar path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.files import CsvSource
from factory.errors import FactoryError

MES = {"MES": {"tick_size": 0.25, "point_value": 5.0, "commission": 0.62, "slippage_ticks": 1}}


def _ticks(tmp_path, rows, name="mes_ticks.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["timestamp", "price", "size"]).to_csv(path, index=False)
    return path


def test_ticks_become_bars_with_exact_ohlcv(tmp_path):
    rows = [("2024-01-02T14:30:05Z", 100.0, 2), ("2024-01-02T14:30:05Z", 101.0, 1),
            ("2024-01-02T14:31:10Z", 99.5, 3), ("2024-01-02T14:34:59Z", 100.25, 1),
            ("2024-01-02T14:35:00Z", 102.0, 4), ("2024-01-02T14:36:30Z", 101.5, 2)]
    src = CsvSource(str(_ticks(tmp_path, rows)), symbol="MES", timeframe="5min", instruments=MES)
    bs = src.load()
    bars = bs.bars["MES"]
    assert bars.index.tolist() == [pd.Timestamp("2024-01-02 14:30", tz="UTC"),
                                   pd.Timestamp("2024-01-02 14:35", tz="UTC")]
    np.testing.assert_array_equal(bars.to_numpy(), [[100.0, 101.0, 99.5, 100.25, 7.0],
                                                    [102.0, 102.0, 101.5, 101.5, 6.0]])
    fine = bs.fine["MES"]  # the 1-minute bars the ladder can use
    assert len(fine) == 5 and fine["volume"].sum() == 13


def test_ticks_need_time_order_and_valid_prices(tmp_path):
    late = [("2024-01-02T14:31:00Z", 100.0, 1), ("2024-01-02T14:30:00Z", 100.0, 1)]
    with pytest.raises(FactoryError, match=r"ticks out of time order at row 2.*sort the file"):
        CsvSource(str(_ticks(tmp_path, late)), symbol="MES", instruments=MES).load()
    bad = [("2024-01-02T14:30:00Z", 100.0, 1), ("2024-01-02T14:30:01Z", -1.0, 1)]
    with pytest.raises(FactoryError, match=r"column 'price' row 2: invalid value -1.0"):
        CsvSource(str(_ticks(tmp_path, bad, "b.csv")), symbol="MES", instruments=MES).load()
