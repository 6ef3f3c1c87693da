"""The embedded universes: futures8's correlation structure, determinism and subsets, specs
from conf/, the default universe unchanged, and a single-symbol run end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from factory.data.synthetic import SyntheticSource
from factory.data.universes import UNIVERSES
from factory.errors import FactoryError
from factory.experiment import run
from tests.conftest import CONF

SPECS = OmegaConf.to_container(OmegaConf.load(CONF / "data" / "instruments" / "cme.yaml"))
EQUITY, FX = ("ES", "NQ", "YM", "RTY"), ("6E", "6A")


def daily_returns(bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Close-to-close log returns per session (sessions open 23:00 UTC), one column each."""
    close = pd.concat({s: b["close"] for s, b in bars.items()}, axis=1, sort=True)
    session = (close.index + pd.Timedelta(hours=1)).floor("D")
    return np.log(close.groupby(session).last()).diff().dropna()


@pytest.fixture(scope="module")
def futures8():
    t0 = time.perf_counter()
    bs = SyntheticSource(days=120, seed=42, universe="futures8", instruments=SPECS).load()
    return bs, time.perf_counter() - t0


def test_futures8_builds_in_seconds_with_the_conf_specs(futures8):
    bs, seconds = futures8
    print(f"futures8, 120 days, 8 symbols: {seconds:.2f}s")
    assert seconds < 10
    assert bs.symbols == sorted(UNIVERSES["futures8"]["symbols"])
    for sym, inst in bs.instruments.items():
        assert (inst.tick_size, inst.point_value) == (SPECS[sym]["tick_size"],
                                                       SPECS[sym]["point_value"])
        ticks = bs.bars[sym][["open", "high", "low", "close"]].to_numpy() / inst.tick_size
        assert np.abs(ticks - np.round(ticks)).max() < 1e-6  # prices on each one's own grid
    assert len({i.tick_size for i in bs.instruments.values()}) >= 5
    assert len({i.point_value for i in bs.instruments.values()}) >= 5


def test_futures8_correlation_structure(futures8):
    corr = daily_returns(futures8[0].bars).corr()
    print("daily return correlations:\n" + corr.round(2).to_string())
    pairs = [(a, b) for i, a in enumerate(EQUITY) for b in EQUITY[i + 1:]]
    assert corr.loc["ES", "NQ"] > 0.7
    assert min(corr.loc[a, b] for a, b in pairs) > 0.6  # equity indices move together
    assert max(abs(corr.loc[f, e]) for f in FX for e in EQUITY) < 0.3  # FX apart
    assert 0.1 < corr.loc["CL", "ES"] < corr.loc["ES", "NQ"]  # crude: less so
    assert abs(corr.loc["GC", "ES"]) < 0.3
    assert corr.loc["6E", "6A"] > 0.2  # the dollar factor


def test_futures8_shares_volatility_shocks(futures8):
    """One common volatility regime: the daily realised volatility of unrelated symbols
    (equities and FX, near-zero return correlation) still rises and falls together."""
    bs = futures8[0]
    vol = {}
    for sym in ("ES", "6E", "GC"):
        r = np.log(bs.bars[sym]["close"]).diff().dropna()
        vol[sym] = r.pow(2).groupby((r.index + pd.Timedelta(hours=1)).floor("D")).sum() ** 0.5
    vol = pd.DataFrame(vol).dropna()
    assert vol.corr().loc["ES", "6E"] > 0.3 and vol.corr().loc["ES", "GC"] > 0.3


def test_futures8_is_deterministic_and_subsets_keep_their_bars(futures8):
    full = futures8[0]
    again = SyntheticSource(days=120, seed=42, universe="futures8", instruments=SPECS,
                            symbols="ES,CL").load()
    assert again.symbols == ["CL", "ES"]
    for sym in again.symbols:  # a symbol's bars do not depend on which others are drawn
        pd.testing.assert_frame_equal(again.bars[sym], full.bars[sym])
    other = SyntheticSource(days=120, seed=43, universe="futures8", instruments=SPECS,
                            symbols=["ES"]).load()
    assert not other.bars["ES"]["close"].equals(full.bars["ES"]["close"])


def test_default_universe_is_bit_for_bit_what_it_was():
    """Values of SyntheticSource(days=10, seed=7) measured before universes existed."""
    bs = SyntheticSource(days=10, seed=7).load()
    expected = {"MES": (1944, 4794.0, 4745.25, 2996703.0, 4974.0),
                "MGC": (1944, 2049.9, 1944.5, 286565.0, 2068.4)}
    for sym, (n, first, last, volume, high) in expected.items():
        b = bs.bars[sym]
        assert (len(b), b["close"].iloc[0], b["close"].iloc[-1], b["volume"].sum(),
                b["high"].max()) == (n, first, last, volume, high)
        assert str(b.index[-1]) == "2024-01-16 23:55:00+00:00"


def test_universe_errors_name_the_key():
    with pytest.raises(FactoryError, match=r"`data.universe` must be one of default, futures8"):
        SyntheticSource(universe="futures9")
    with pytest.raises(FactoryError, match=r"`data.symbols`: ZZ is not in the futures8"):
        SyntheticSource(universe="futures8", symbols=["ES", "ZZ"])
    with pytest.raises(FactoryError, match=r"no instrument spec for symbol 'ES'"):
        SyntheticSource(days=3, universe="futures8", symbols="ES").load()  # no specs given
    with pytest.raises(FactoryError, match=r"squared loadings sum to 1.250"):
        SyntheticSource(universe={"factors": ["m"], "symbols": {
            "X": {"start_price": 1.0, "loadings": {"m": 1.118}}}})


def test_single_symbol_futures8_run_end_to_end(make_cfg):
    """`data.universe=futures8 data.symbols=ES`: what each job of `-m data.symbols=ES,NQ,...`
    runs (one symbol, its own spec from conf/, its own Phase-1 cache entry)."""
    cfg = make_cfg("data.universe=futures8", "data.symbols=ES", "model.n_estimators=20")
    objective = run(cfg)
    assert 0 <= objective <= 1
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    report = json.loads((out / "validation_report.json").read_text())
    assert list(report["symbols"]) == ["ES"] and report["data"]["universe"] == "futures8"
    for split in ("val", "test"):
        m = metrics[split]
        assert "marks" in m and ("sharpe_se" in m)
        if m["n_trades"] >= 2:
            assert m["sharpe_se"] > 0
