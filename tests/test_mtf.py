"""Multi-timeframe ladder: higher-timeframe features come from completed bars only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.resample import resample_bars
from factory.data.synthetic import SyntheticSource
from factory.errors import FactoryError
from factory.features.pipeline import FeaturePipeline

BASE = pd.Timedelta("5min")


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return SyntheticSource(days=10, seed=4).load().bars["MES"]


def _pipe(**kw) -> FeaturePipeline:
    return FeaturePipeline({"returns": {"lags": [1]}, "rsi": {"periods": [3]}},
                           timeframes=["15min", "1h"], mtf_groups=["returns", "rsi"], **kw)


def test_hourly_feature_at_1035_comes_from_the_0900_bar(bars):
    feats = _pipe().transform(bars, BASE)
    hourly = resample_bars(bars, pd.Timedelta("1h"))
    hourly_ret = np.log(hourly["close"]).diff().astype(np.float32)  # features are float32
    day = bars.index[bars.index.hour == 10][0].normalize()
    at = day + pd.Timedelta("10h35min")  # closes 10:40: the 10:00-11:00 bar is in progress
    assert feats.loc[at, "ret_1_1h"] == hourly_ret.loc[day + pd.Timedelta("9h")]
    # the 10:55 bar closes at 11:00, exactly when the 10:00-11:00 bar completes
    last = day + pd.Timedelta("10h55min")
    assert feats.loc[last, "ret_1_1h"] == hourly_ret.loc[day + pd.Timedelta("10h")]
    quarter = resample_bars(bars, pd.Timedelta("15min"))
    q_ret = np.log(quarter["close"]).diff().astype(np.float32)
    assert feats.loc[at, "ret_1_15m"] == q_ret.loc[day + pd.Timedelta("10h15min")]


@pytest.mark.parametrize("t", [400, 1234, 2500])
def test_ladder_lookahead_invariance_and_spike(bars, t):
    pipe = _pipe()
    full = pipe.transform(bars, BASE)
    cut = pipe.transform(bars.iloc[: t + 1], BASE)
    warm = pipe.warmup_for(BASE)
    np.testing.assert_array_equal(cut.iloc[warm:].to_numpy(), full.iloc[warm : t + 1].to_numpy())
    spiked = bars.copy()
    spiked.iloc[t + 1 :, :4] *= 50.0
    after = pipe.transform(spiked, BASE)
    np.testing.assert_array_equal(after.iloc[: t + 1].to_numpy(), full.iloc[: t + 1].to_numpy())


def test_warmup_bound_covers_the_ladder(bars):
    pipe = _pipe()
    feats = pipe.transform(bars, BASE)
    assert np.isfinite(feats.iloc[pipe.warmup_for(BASE):].to_numpy()).all()
    assert set(feats.columns) >= {"ret_1", "ret_1_15m", "ret_1_1h", "rsi_3_1h"}


def test_rungs_below_the_base_use_the_minute_that_closes_with_the_bar():
    src = SyntheticSource(days=5, seed=4).load()
    bars, minutes = src.bars["MES"], src.fine["MES"]
    pipe = FeaturePipeline({"returns": {"lags": [1]}}, timeframes=["1min", "5min", "1h"],
                           mtf_groups=["returns"])
    feats = pipe.transform(bars, BASE, fine=minutes)
    assert "ret_1_5m" not in feats  # the working timeframe is the base features themselves
    minute_ret = np.log(minutes["close"]).diff().astype(np.float32)
    at = bars.index[500]
    last_minute = minutes.index[minutes.index.searchsorted(at + BASE) - 1]
    assert last_minute < at + BASE and feats.loc[at, "ret_1_1m"] == minute_ret.loc[last_minute]
    # without finer bars the 1-minute rung is skipped (and reported by Phase 1)
    assert pipe.rungs(BASE, has_fine=False) == ([pd.Timedelta("1h")], ["1m"])
    assert "ret_1_1m" not in pipe.transform(bars, BASE)


def test_bad_ladder_config():
    with pytest.raises(FactoryError, match=r"`features.mtf_groups` \['rsi'\]"):
        FeaturePipeline({"returns": {}}, timeframes=["1h"], mtf_groups=["rsi"])
    with pytest.raises(FactoryError, match="repeats a timeframe"):
        FeaturePipeline({"returns": {}}, timeframes=["1h", "60min"], mtf_groups=["returns"])


def test_column_selection_uses_training_rows_only():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(500)
    X = pd.DataFrame({"a": a, "a_copy": a, "a_close": a + 1e-3 * rng.standard_normal(500),
                      "flat": np.ones(500), "b": rng.standard_normal(500)})
    pipe = FeaturePipeline({"returns": {}}, max_correlation=0.95)
    kept, dropped = pipe.select_columns(X, np.arange(300))
    assert kept == ["a", "b"]
    assert dropped == {"constant": ["flat"], "duplicate": ["a_copy"], "correlated": ["a_close"]}
    X.iloc[300:] = 0.0  # rows outside training change nothing
    assert pipe.select_columns(X, np.arange(300)) == (kept, dropped)
