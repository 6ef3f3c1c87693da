"""Many files in: `data.path` as a glob or a directory, one file per symbol, each validated on
its own; symbols keep their own sessions (nothing filled across symbols)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from factory.data.files import CsvSource, ParquetSource
from factory.data.resample import resample_bars
from factory.data.synthetic import SyntheticSource
from factory.errors import FactoryError
from factory.experiment import run
from tests.conftest import CONF

SPECS = OmegaConf.to_container(OmegaConf.load(CONF / "data" / "instruments" / "cme.yaml"))


@pytest.fixture(scope="module")
def universe():
    return SyntheticSource(days=6, seed=5, universe="futures8", instruments=SPECS,
                           symbols=["ES", "NQ", "6E"], timeframe="1min").load()


def export(bars: pd.DataFrame, path: Path) -> Path:
    bars.reset_index().to_csv(path, index=False)
    return path


def test_glob_one_file_per_symbol_from_the_stem(tmp_path, universe):
    for sym in ("ES", "NQ"):
        export(universe.bars[sym], tmp_path / f"{sym}_bt.csv")
    export(universe.bars["6E"], tmp_path / "6E_other.csv")  # not matched by the glob
    bs = CsvSource(path=f"{tmp_path}/*_bt.csv", instruments=SPECS).load()
    assert bs.symbols == ["ES", "NQ"]
    assert bs.instruments["NQ"].point_value == 20.0 and bs.instruments["ES"].commission == 2.1
    for sym in bs.symbols:
        pd.testing.assert_frame_equal(bs.bars[sym], resample_bars(universe.bars[sym], "5min"),
                                      check_freq=False)
        assert bs.report["per_symbol"][sym]["file"] == str(tmp_path / f"{sym}_bt.csv")
    assert bs.report["files"] == [str(tmp_path / "ES_bt.csv"), str(tmp_path / "NQ_bt.csv")]


def test_directory_and_parquet(tmp_path, universe):
    folder = tmp_path / "bars"
    folder.mkdir()
    for sym in ("ES", "6E"):
        universe.bars[sym].to_parquet(folder / f"{sym.lower()}.parquet")
    bs = ParquetSource(path=str(folder), instruments=SPECS).load()
    assert bs.symbols == ["6E", "ES"]
    assert bs.instruments["6E"].tick_size == 0.00005


def test_symbols_keep_their_own_sessions(tmp_path, universe):
    """A symbol whose history starts later, or whose session is shorter, gets no bars there:
    each symbol's bars are exactly its own file's (no timestamps added, nothing filled)."""
    es = universe.bars["ES"]
    fx = universe.bars["6E"]
    fx = fx[(fx.index >= fx.index[0] + pd.Timedelta(days=2)) & (fx.index.hour.isin(range(7, 16)))]
    export(es, tmp_path / "ES.csv")
    export(fx, tmp_path / "6E.csv")
    bs = CsvSource(path=str(tmp_path), instruments=SPECS).load()
    for sym, own in (("ES", es), ("6E", fx)):
        assert bs.bars[sym].index.equals(resample_bars(own, "5min").index)
        assert bs.fine[sym].index.equals(own.index)
    closed = bs.bars["ES"].index.difference(bs.bars["6E"].index)  # 6E closed, ES trading
    assert len(bs.bars["6E"]) < len(bs.bars["ES"]) / 2 and len(closed) > len(bs.bars["6E"])


def test_each_file_is_validated_on_its_own(tmp_path, universe):
    export(universe.bars["ES"], tmp_path / "ES_bt.csv")
    bad = universe.bars["NQ"].copy()
    bad.iloc[100, bad.columns.get_loc("high")] = 1.0  # below the low
    export(bad, tmp_path / "NQ_bt.csv")
    with pytest.raises(FactoryError, match=r"NQ_bt.csv \[NQ\]: column 'high' \(1.0\) is below"):
        CsvSource(path=f"{tmp_path}/*_bt.csv", instruments=SPECS).load()
    export(universe.bars["NQ"], tmp_path / "ZZ_bt.csv")
    with pytest.raises(FactoryError, match=r"ZZ_bt.csv: no instrument spec for symbol 'ZZ'.*"
                                           r"the part of its name that the `\*`"):
        CsvSource(path=f"{tmp_path}/*_bt.csv", instruments=SPECS, symbols=["ES", "ZZ"]).load()


def test_symbols_read_only_the_files_they_need(tmp_path, universe):
    export(universe.bars["ES"], tmp_path / "ES_bt.csv")
    (tmp_path / "NQ_bt.csv").write_text("not,a,bar,file\n1,2\n")  # never read for ES
    src = CsvSource(path=f"{tmp_path}/*_bt.csv", instruments=SPECS, symbols="ES")
    assert src.load().symbols == ["ES"]
    before = src.fingerprint()
    assert list(before["files"]) == [str(tmp_path / "ES_bt.csv")]
    export(universe.bars["ES"].iloc[:-1], tmp_path / "ES_bt.csv")
    assert src.fingerprint() != before  # an edited file misses the Phase-1 cache


def test_zero_volume_runs_up_to_the_limit_pass(tmp_path, universe):
    bars = universe.bars["ES"].copy()
    bars.iloc[10:20, bars.columns.get_loc("volume")] = 0.0
    path = export(bars, tmp_path / "ES.csv")
    assert CsvSource(path=str(path), instruments=SPECS, max_zero_volume_run=10).load().symbols \
        == ["ES"]
    with pytest.raises(FactoryError, match=r"is 0 on 10 consecutive rows.*run=10`"):
        CsvSource(path=str(path), instruments=SPECS, max_zero_volume_run=9).load()


def test_a_directory_of_per_symbol_csv_files_trains_end_to_end(make_cfg, tmp_path):
    bs = SyntheticSource(days=21, seed=9, universe="futures8", instruments=SPECS,
                         symbols=["ES", "NQ"]).load()
    folder = tmp_path / "csv"
    folder.mkdir()
    for sym in bs.symbols:
        export(bs.bars[sym], folder / f"{sym}_bt.csv")
    cfg = make_cfg("data=csv", f"data.path='{folder}/*_bt.csv'", "model.n_estimators=10")
    assert 0 <= run(cfg) <= 1
    report = json.loads((Path(cfg.paths.output_dir) / "validation_report.json").read_text())
    assert sorted(report["symbols"]) == ["ES", "NQ"]
    splits = {s: report["symbols"][s]["splits"] for s in ("ES", "NQ")}
    assert all(v["val"] == v["test"] for v in splits.values())  # equal after the gaps
    assert np.isfinite(json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
                       ["val"]["accuracy"])
