"""Gap report classification on a hand-built calendar."""

from __future__ import annotations

import pandas as pd

from factory.data.gaps import gap_report

TF = pd.Timedelta("5min")


def test_classifies_daily_break_weekend_holiday_and_intraday():
    parts = [
        pd.date_range("2024-01-04 20:00", "2024-01-04 21:55", freq="5min", tz="UTC"),  # Thu
        pd.date_range("2024-01-04 23:00", "2024-01-05 01:00", freq="5min", tz="UTC"),  # break
        pd.date_range("2024-01-05 01:30", "2024-01-05 21:55", freq="5min", tz="UTC"),  # 25 min
        pd.date_range("2024-01-07 23:00", "2024-01-08 21:55", freq="5min", tz="UTC"),  # weekend
        pd.date_range("2024-01-09 23:00", "2024-01-10 01:00", freq="5min", tz="UTC"),  # holiday
    ]
    index = parts[0].append(parts[1:])
    rep = gap_report(index, TF)
    assert rep["daily_break"] == 1 and rep["weekend"] == 1 and rep["holiday"] == 1
    assert rep["intraday"] == 1 and rep["intraday_missing_bars"] == 5
    assert rep["gaps"] == 4
    assert rep["largest_intraday"] == [{"after": "2024-01-05 01:00:00+00:00", "minutes": 30.0}]


def test_synthetic_sessions_show_daily_breaks_and_weekends():
    from factory.data.synthetic import SyntheticSource

    bars = SyntheticSource(days=14, seed=1).load().bars["MES"]
    rep = gap_report(bars.index, TF)
    # 2024-01-07 (Sun) .. 01-20: two trading weeks, one weekend inside the data
    assert rep["weekend"] == 1 and rep["daily_break"] == 8 and rep["holiday"] == 0
