"""Every catalog group's streaming form equals its batch function, bar by bar.

Each group streams on synthetic 5-minute bars: its state is warmed on a history, then fed
one bar at a time; every streamed value must equal the batch function's value at that bar
bit for bit (the forms use the batch arithmetic: TA-Lib stream handles, pandas' own rolling
accumulators, the batch helpers on exactly their window). Warm-ups shorter than a group's
own lookback are covered too (TA-Lib handles then open once the history suffices).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.synthetic import SyntheticSource
from factory.features.registry import catalog
from factory.features.streaming import GroupSet

N_STREAM = 160  # bars fed one at a time after the warm-up


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return SyntheticSource(days=10, seed=3).load().bars["MES"]


def stream_columns(groups: dict, history: pd.DataFrame, new: pd.DataFrame,
                   registry=None) -> dict[str, np.ndarray]:
    gs = GroupSet(groups, registry or catalog())
    gs.warm(history)
    rows = [gs.step(dict(zip(new.columns, row, strict=True)), ts)
            for ts, row in zip(new.index, new.to_numpy(np.float64), strict=True)]
    return {k: np.array([r[k] for r in rows], np.float64) for k in rows[0]}


def assert_bitwise(got: dict, want: dict, rows: slice, label: str) -> None:
    assert set(got) == set(want), (label, sorted(set(got) ^ set(want)))
    for name, values in got.items():
        ref = np.asarray(want[name], np.float64)[rows]
        same = (values == ref) | (np.isnan(values) & np.isnan(ref))
        assert same.all(), (label, name, np.flatnonzero(~same)[:5], values[~same][:3],
                            ref[~same][:3])


@pytest.mark.parametrize("name", sorted(catalog()))
def test_group_streams_bit_for_bit(bars, name):
    group = catalog()[name]
    assert group.stream is not None, f"{name} has no streaming form"
    ohlcv = bars[["open", "high", "low", "close", "volume"]]
    want = group.fn(ohlcv, **group.resolve({}))
    for start in (len(ohlcv) - N_STREAM, 5):  # a long warm-up, and one shorter than the lookback
        got = stream_columns({name: {}}, ohlcv.iloc[:start], ohlcv.iloc[start:start + N_STREAM])
        assert_bitwise(got, want, slice(start, start + N_STREAM), f"{name}@{start}")


def test_default_feature_set_streams_bit_for_bit(tmp_path):
    """The models' default set (boosting_optimal: the 15m/30m/1h ladder, the HMM filter one
    step per bar, fracdiff) through the live feature stream equals the batch frame bit for
    bit, including the bars where a higher-timeframe rung completes."""
    from factory.bundle.features import FeatureState
    from factory.bundle.stream import OHLCV, IncrementalFeatureStream
    from factory.config import build
    from factory.phase1 import load_or_build
    from tests.conftest import compose_config

    cfg = compose_config(tmp_path, "features=boosting_optimal")
    ds, _, _ = load_or_build(cfg)
    state = FeatureState.of_dataset(ds, cfg.features)
    assert state.fitted["MES"] and any(c.endswith("_1h") for c in state.columns)
    bars = build(cfg.data).load().bars["MES"][list(OHLCV)]
    want = state.frame("MES", bars).to_numpy(np.float32)
    start = len(bars) - 150  # 150 bars: more than one completed 1h rung and session change
    stream = IncrementalFeatureStream(state, "MES")
    stream.warm_up(bars.iloc[:start])
    got = np.array([stream.push(ts, dict(zip(OHLCV, row, strict=True)))
                    for ts, row in zip(bars.index[start:], bars.to_numpy(np.float64)[start:],
                                       strict=True)])
    ref = want[start:]
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    assert np.isfinite(ref).all(axis=1).mean() > 0.9  # past the warm-up: real values compared
    assert same.all(), [state.columns[j] for j in np.flatnonzero(~same.all(axis=0))][:5]
