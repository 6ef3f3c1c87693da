"""Tests of the data layer: resampling, the synthetic generator, file sources and validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import OHLCV, BarSet
from factory.data.files import CsvSource, ParquetSource
from factory.data.resample import infer_timeframe, resample_bars
from factory.data.synthetic import SyntheticSource
from factory.data.validate import validate_bars
from factory.errors import FactoryError

INSTR = {"tick_size": 0.25, "point_value": 5.0, "commission": 0.62, "slippage_ticks": 1}


def minute_frame(n: int = 10, start: str = "2024-01-02 10:00") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq="1min", tz="UTC", name="timestamp")
    close = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"open": close - 0.5, "high": close + 1.0, "low": close - 1.0, "close": close,
         "volume": np.arange(1, n + 1, dtype=float)},
        index=idx,
    )


# --------------------------------------------------------------------------- resampling


def test_resample_ten_minutes_into_two_bars() -> None:
    out = resample_bars(minute_frame(10), pd.Timedelta("5min"))
    assert list(out.columns) == list(OHLCV)
    assert list(out.index) == [pd.Timestamp("2024-01-02 10:00", tz="UTC"),
                               pd.Timestamp("2024-01-02 10:05", tz="UTC")]
    assert out.index.name == "timestamp"
    assert out.iloc[0].tolist() == [99.5, 105.0, 99.0, 104.0, 15.0]
    assert out.iloc[1].tolist() == [104.5, 110.0, 104.0, 109.0, 40.0]
    assert (out.dtypes == np.float64).all()


def test_resample_anchors_on_epoch_and_omits_empty_bins() -> None:
    bars = minute_frame(20, start="2024-01-02 10:03")  # 10:03 .. 10:22
    bars = bars.drop(bars.index[(bars.index.minute >= 10) & (bars.index.minute < 15)])
    out = resample_bars(bars, "5min")
    stamps = [t.strftime("%H:%M") for t in out.index]
    assert stamps == ["10:00", "10:05", "10:15", "10:20"]  # 10:10 bin is empty -> omitted
    assert out.loc["2024-01-02 10:00+00:00", "open"] == 99.5  # first bar of the bin (10:03)
    assert out.loc["2024-01-02 10:00+00:00", "volume"] == 1 + 2
    assert out.loc["2024-01-02 10:20+00:00", "close"] == 119.0


def test_resample_same_timeframe_is_identity_and_coarser_fails() -> None:
    five = resample_bars(minute_frame(30), "5min")
    assert resample_bars(five, "5min") is five
    with pytest.raises(FactoryError, match=r"coarser than the requested timeframe 1min"):
        resample_bars(five, "1min")
    with pytest.raises(FactoryError, match=r"not a whole multiple"):
        resample_bars(five, "7min")
    assert infer_timeframe(five.index) == pd.Timedelta("5min")


def test_infer_timeframe_is_modal_despite_gaps() -> None:
    idx = pd.DatetimeIndex(["2024-01-02 10:00", "2024-01-02 10:01", "2024-01-02 10:02",
                            "2024-01-02 11:00", "2024-01-02 11:01"], tz="UTC")
    assert infer_timeframe(idx) == pd.Timedelta("1min")


# --------------------------------------------------------------------------- synthetic


@pytest.fixture(scope="module")
def synth() -> BarSet:
    return SyntheticSource(days=45, seed=7).load()


def test_synthetic_is_deterministic() -> None:
    first = SyntheticSource(days=10, seed=7).load()
    again = SyntheticSource(days=10, seed=7).load()
    other = SyntheticSource(days=10, seed=8).load()
    for sym in ("MES", "MGC"):
        pd.testing.assert_frame_equal(first.bars[sym], again.bars[sym])
        assert not first.bars[sym]["close"].equals(other.bars[sym]["close"])
    assert first.report == {**again.report, "seconds": first.report["seconds"]}
    assert not np.allclose(first.bars["MES"]["close"].pct_change().iloc[1:200],
                           first.bars["MGC"]["close"].pct_change().iloc[1:200])


def test_synthetic_contract_and_calendar(synth: BarSet) -> None:
    assert synth.symbols == ["MES", "MGC"]
    assert synth.timeframe == pd.Timedelta("5min")
    assert synth.instruments["MES"].tick_size == 0.25
    assert synth.instruments["MGC"].point_value == 10.0
    rep = synth.report
    assert rep["minutes_generated"] > rep["bars"] > 0
    assert rep["bars"] == sum(len(b) for b in synth.bars.values())
    assert {"gap_clusters", "minutes_missing"} <= set(rep["per_symbol"]["MES"])
    for sym, b in synth.bars.items():
        idx = b.index
        assert str(idx.tz) == "UTC" and idx.is_monotonic_increasing and idx.is_unique
        assert list(b.columns) == list(OHLCV)
        assert (idx.minute % 5 == 0).all() and (idx.second == 0).all()
        assert not (idx.hour == 22).any()  # maintenance break 22:00-23:00 UTC
        dow, hour = idx.day_of_week, idx.hour
        weekend = (dow == 5) | ((dow == 4) & (hour >= 22)) | ((dow == 6) & (hour < 23))
        assert not weekend.any()
        assert (b["high"] >= b[["open", "close"]].max(axis=1)).all()
        assert (b["low"] <= b[["open", "close"]].min(axis=1)).all()
        assert (b[["open", "high", "low", "close"]] > 0).all().all()
        assert (b["volume"] > 0).all()
        ticks = b[["open", "high", "low", "close"]].to_numpy() / synth.instruments[sym].tick_size
        assert np.abs(ticks - np.round(ticks)).max() < 1e-6


def test_synthetic_fat_tails_and_volume_follows_volatility(synth: BarSet) -> None:
    for b in synth.bars.values():
        r = np.log(b["close"]).diff().dropna().to_numpy()
        z = r - r.mean()
        kurtosis = np.mean(z**4) / np.mean(z**2) ** 2
        assert kurtosis > 3.0
        corr = np.corrcoef(np.abs(r), b["volume"].to_numpy()[1:])[0, 1]
        assert corr > 0.1


def test_sources_accept_omegaconf_containers(tmp_path) -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({
        "instruments": {"XYZ": INSTR}, "universe": {"XYZ": {"start_price": 50.0,
                                                               "annual_vol": 0.3}},
        "regime_vol": [0.5, 2.0], "regime_minutes": [300, 60], "column_map": {"Last": "close"},
    })
    bs = SyntheticSource(days=5, instruments=cfg.instruments, universe=cfg.universe,
                         regime_vol=cfg.regime_vol, regime_minutes=cfg.regime_minutes).load()
    assert bs.symbols == ["XYZ"] and len(bs.bars["XYZ"]) > 0
    path = write_csv(tmp_path, GOOD.replace("close", "Last"))
    bs = CsvSource(path=str(path), column_map=cfg.column_map, instruments=OmegaConf.create(
        {"BARS": INSTR})).load()
    assert bs.bars["BARS"]["close"].iloc[-1] == 102.5


def test_synthetic_scales_with_requested_timeframe_and_symbols() -> None:
    bs = SyntheticSource(days=8, timeframe="15min", instruments={"XYZ": INSTR},
                         universe={"XYZ": {"start_price": 100.0, "annual_vol": 0.2}}).load()
    assert bs.symbols == ["XYZ"]
    assert (bs.bars["XYZ"].index.minute % 15 == 0).all()
    with pytest.raises(FactoryError, match="start_price"):
        SyntheticSource(days=3, instruments={"XYZ": INSTR}, universe={"XYZ": {}}).load()


# --------------------------------------------------------------------------- files


def write_csv(tmp_path, text: str, name: str = "bars.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """timestamp,open,high,low,close,volume
2024-01-02T10:00:00Z,100,101,99,100.5,10
2024-01-02T10:01:00Z,100.5,102,100,101.5,11
2024-01-02T10:02:00Z,101.5,102,101,101.75,12
2024-01-02T10:05:00Z,101.75,103,101.5,102.5,13
"""


def csv_source(path, **kw) -> CsvSource:
    kw.setdefault("default_instrument", INSTR)
    return CsvSource(path=str(path), **kw)


def test_csv_without_symbol_column_uses_file_stem(tmp_path) -> None:
    bs = csv_source(write_csv(tmp_path, GOOD, "es_1m.csv")).load()
    assert bs.symbols == ["ES_1M"]
    b = bs.bars["ES_1M"]
    assert b.iloc[0].tolist() == [100.0, 102.0, 99.0, 101.75, 33.0]
    assert b.iloc[1].tolist() == [101.75, 103.0, 101.5, 102.5, 13.0]
    assert bs.report["per_symbol"]["ES_1M"]["rows"] == 4
    named = csv_source(write_csv(tmp_path, GOOD), symbol="MES", instruments={"MES": INSTR}).load()
    assert named.symbols == ["MES"] and named.instruments["MES"].commission == 0.62


def test_csv_with_two_symbols_and_renamed_columns(tmp_path) -> None:
    text = "Date,Ticker,Open,HIGH,low,Last,Vol\n"
    for sym, base in (("MES", 4800.0), ("MGC", 2050.0)):
        for m in range(10):
            p = base + m
            text += f"2024-01-02 10:{m:02d}:00+00:00,{sym},{p},{p + 1},{p - 1},{p + 0.5},{m}\n"
    src = csv_source(write_csv(tmp_path, text), timestamp_column="Date", symbol_column="Ticker",
                     column_map={"Last": "close", "Vol": "volume"})
    bs = src.load()
    assert bs.symbols == ["MES", "MGC"]
    assert bs.bars["MGC"].iloc[1].tolist() == [2055.0, 2060.0, 2054.0, 2059.5, 35.0]
    assert len(bs.bars["MES"]) == 2


def test_csv_timezones(tmp_path) -> None:
    aware = GOOD.replace("Z", "-06:00")
    b = csv_source(write_csv(tmp_path, aware)).load().bars["BARS"]
    assert b.index[0] == pd.Timestamp("2024-01-02 16:00", tz="UTC")
    naive = GOOD.replace("Z", "")
    b = csv_source(write_csv(tmp_path, naive), timezone="America/Chicago").load().bars["BARS"]
    assert b.index[0] == pd.Timestamp("2024-01-02 16:00", tz="UTC")
    with pytest.raises(FactoryError, match=r"without a timezone.*data\.timezone=America/Chicago"):
        csv_source(write_csv(tmp_path, naive)).load()
    with pytest.raises(FactoryError, match=r"unknown timezone"):
        csv_source(write_csv(tmp_path, naive), timezone="Mars/Olympus").load()
    spring = naive.replace("2024-01-02T10", "2024-03-10T02")  # 02:xx does not exist that day
    with pytest.raises(FactoryError, match=r"daylight-saving.*data\.timezone=UTC"):
        csv_source(write_csv(tmp_path, spring), timezone="America/Chicago").load()


def test_parquet_round_trip(tmp_path, synth: BarSet) -> None:
    frame = synth.bars["MES"].iloc[:500]
    path = tmp_path / "mes.parquet"
    frame.to_parquet(path)
    bs = ParquetSource(path=str(path), symbol="MES", instruments={"MES": INSTR}).load()
    pd.testing.assert_frame_equal(bs.bars["MES"], frame, check_freq=False)
    long = frame.reset_index().assign(symbol="MES")
    long.to_parquet(tmp_path / "long.parquet")
    bs = ParquetSource(path=str(tmp_path / "long.parquet"), instruments={"MES": INSTR},
                       timeframe="15min").load()
    assert len(bs.bars["MES"]) == len(resample_bars(frame, "15min"))


def _bad(tmp_path, text: str, pattern: str, **kw) -> None:
    with pytest.raises(FactoryError, match=pattern):
        csv_source(write_csv(tmp_path, text), **kw).load()


def edit(row: int, col: str, value: str, text: str = GOOD) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(col)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FactoryError, match=r"data file not found: .*nope\.csv"):
        csv_source(tmp_path / "nope.csv").load()


def test_empty_and_header_only_files(tmp_path) -> None:
    _bad(tmp_path, "", r"bars\.csv: the file is empty")
    _bad(tmp_path, GOOD.splitlines()[0] + "\n", r"bars\.csv: the file has column names but no data")


def test_missing_column_suggests_closest(tmp_path) -> None:
    _bad(tmp_path, GOOD.replace("close", "clse"),
         r"bars\.csv: missing column 'close'.*Did you mean 'clse'\?.*column_map=\{clse: close\}")
    _bad(tmp_path, GOOD.replace("timestamp", "when"), r"missing column 'timestamp'")


def test_non_numeric_value(tmp_path) -> None:
    _bad(tmp_path, edit(3, "high", "1o2"),
         r"bars\.csv \[BARS\]: column 'high' has a non-numeric value '1o2' at row 3 "
         r"\(2024-01-02 10:02:00\+00:00\)")


def test_unsorted_and_duplicate_timestamps(tmp_path) -> None:
    lines = GOOD.splitlines()
    unsorted = "\n".join([lines[0], lines[1], lines[3], lines[2], lines[4]]) + "\n"
    _bad(tmp_path, unsorted, r"column 'timestamp' is not sorted: row 3 \(2024-01-02 10:01.*"
                             r"comes after row 2 .*Fix: sort")
    dup = "\n".join([lines[0], lines[1], lines[2], lines[2], lines[4]]) + "\n"
    _bad(tmp_path, dup, r"duplicate timestamp 2024-01-02 10:01:00\+00:00 at row 3 "
                        r"\(same as row 2\)")


def test_high_below_low(tmp_path) -> None:
    _bad(tmp_path, edit(2, "high", "99"),
         r"column 'high' \(99\.0\) is below column 'low' \(100\.0\) at row 2")


def test_close_and_open_outside_range(tmp_path) -> None:
    _bad(tmp_path, edit(4, "close", "104"),
         r"column 'close' \(104\.0\) is outside \[low, high\] = \[101\.5, 103\.0\] at row 4")
    _bad(tmp_path, edit(1, "open", "98.5"), r"column 'open' \(98\.5\) is outside .* at row 1")


def test_non_positive_prices_and_negative_volume(tmp_path) -> None:
    _bad(tmp_path, edit(2, "low", "-1"), r"column 'low' has a non-positive price -1\.0 at row 2")
    text = edit(1, "low", "0", edit(1, "open", "0"))
    _bad(tmp_path, text, r"column 'open' has a non-positive price 0\.0 at row 1")
    _bad(tmp_path, edit(3, "volume", "-5"), r"column 'volume' is negative \(-5\.0\) at row 3")


def test_nan_runs_fail_by_default_and_option_drops(tmp_path) -> None:
    text = edit(3, "close", "", edit(2, "close", "", edit(2, "volume", "")))
    _bad(tmp_path, text, r"column 'close' is NaN/empty at row 2 .*run of 2 row\(s\).*"
                         r"data\.max_nan_run=2")
    _bad(tmp_path, text, r"run of 2 row\(s\)", max_nan_run=1)
    bs = csv_source(write_csv(tmp_path, text), max_nan_run=2).load()
    assert bs.report["per_symbol"]["BARS"]["nan_rows_dropped"] == 2
    assert bs.bars["BARS"].iloc[0].tolist() == [100.0, 101.0, 99.0, 100.5, 10.0]


def test_unparseable_and_empty_timestamps(tmp_path) -> None:
    _bad(tmp_path, edit(2, "timestamp", "yesterday"),
         r"column 'timestamp' has an unparseable timestamp 'yesterday' at row 2.*ISO-8601")
    _bad(tmp_path, edit(4, "timestamp", ""), r"column 'timestamp' is empty at row 4")


def test_symbol_selection_and_bad_symbol(tmp_path) -> None:
    text = GOOD.replace("timestamp,", "symbol,timestamp,").replace("\n2024", "\nMES,2024")
    with pytest.raises(FactoryError, match=r"`data.symbol=MGC` is not in column 'symbol'"):
        csv_source(write_csv(tmp_path, text), symbol="MGC").load()


def test_validate_bars_accepts_canonical_frames() -> None:
    frame = minute_frame(5)
    out = validate_bars(frame, "memory", "X")
    pd.testing.assert_frame_equal(out, frame, check_freq=False, check_index_type=False)
    bad = frame.copy()
    bad.iloc[2, bad.columns.get_loc("high")] = 50.0
    with pytest.raises(FactoryError, match=r"memory \[X\]: column 'high' \(50\.0\) is below"):
        validate_bars(bad, "memory", "X")
