"""Meta-labels on hand-built paths: is taking the primary side worth its cost?"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.labeling.meta import meta_labels, momentum_side
from factory.labeling.triple_barrier import TripleBarrierLabeler

FREE = Instrument("X", tick_size=0.25, point_value=5.0, commission=0.0, slippage_ticks=0)


def test_momentum_side_uses_closes_up_to_t_only():
    close = np.array([10, 11, 9, 9, 12, 12.0])
    # t=2: 9 vs 10 -> -1; t=3: 9 vs 11 -> -1; t=4: 12 vs 9 -> +1; t=5: 12 vs 9 -> +1
    np.testing.assert_array_equal(momentum_side(close, 2), [0, 0, -1, -1, 1, 1])
    np.testing.assert_array_equal(momentum_side(close, 3), [0, 0, 0, -1, 1, 1])
    np.testing.assert_array_equal(momentum_side(close, 6), 0)
    assert momentum_side(close, 2).dtype == np.int8


def test_meta_labels_hand_computed():
    side = np.array([1, -1, 0, 1, -1, 1])
    ret_long = np.array([0.02, 0.01, 0.05, 0.001, -0.03, np.nan])
    ret_short = np.array([-0.02, 0.03, -0.05, -0.001, 0.001, np.nan])
    cost = np.full(6, 0.002)
    # long +2% > .2% cost: 1; short +3%: 1; side 0: NaN; long +.1% < cost: 0;
    # short +.1% < cost: 0; no label (window past the data): NaN
    np.testing.assert_array_equal(meta_labels(side, ret_long, ret_short, cost),
                                  [1, 1, np.nan, 0, 0, np.nan])


def test_meta_labels_reject_a_side_that_is_not_a_sign():
    with pytest.raises(FactoryError, match="primary side must be -1, 0 or \\+1"):
        meta_labels(np.array([0.5]), np.zeros(1), np.zeros(1), np.zeros(1))


def _up_then_down(n_up: int = 30, n_down: int = 30) -> pd.DataFrame:
    """Close rises 1 point a bar, then falls 1 a bar; open = previous close, range +-0.25."""
    close = np.r_[100 + np.arange(n_up + 1.0), 100 + n_up - np.arange(1, n_down + 1.0)]
    open_ = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-02", periods=len(close), freq="5min", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + 0.25,
                         "low": np.minimum(open_, close) - 0.25, "close": close,
                         "volume": 1.0}, index=idx)


def test_labeler_meta_on_a_trend_and_its_reversal():
    bars = _up_then_down()
    # ATR(3) of a 1-point bar with +-0.25 wicks is 1.5 once warm: barriers entry +- 1.65
    lab = TripleBarrierLabeler(horizon=5, width="atr", atr_period=3, upper_mult=1.1,
                               lower_mult=1.1, meta={"side_from": "momentum", "lookback": 3})
    out = lab.label(bars, FREE)
    plain = TripleBarrierLabeler(horizon=5, width="atr", atr_period=3, upper_mult=1.1,
                                 lower_mult=1.1).label(bars, FREE)
    np.testing.assert_array_equal(out["side"], momentum_side(bars["close"].to_numpy(), 3))
    assert (out["exit_idx"].iloc[:3] == -1).all()  # side 0: nothing to judge, excluded
    # t=10, rising: side +1, upper barrier at bar 12 -> long pays -> 1
    assert out["side"].iloc[10] == 1 and plain["touch"].iloc[10] == 1 and out["label"].iloc[10] == 1
    # t=30 is the peak: momentum still says long, the price falls: lower barrier -> 0
    assert out["side"].iloc[30] == 1 and plain["touch"].iloc[30] == -1
    assert out["label"].iloc[30] == 0 and out["exit_idx"].iloc[30] == 32
    # t=40, falling: side -1, the short pays -> 1 (the plain label is -1)
    assert out["side"].iloc[40] == -1 and plain["label"].iloc[40] == -1
    assert out["label"].iloc[40] == 1
    live = out["exit_idx"] >= 0
    assert set(out.loc[live, "label"].unique()) <= {0, 1}
    expect = meta_labels(out["side"].to_numpy(), plain["ret_long"].to_numpy(),
                         plain["ret_short"].to_numpy(), plain["cost"].to_numpy())
    np.testing.assert_array_equal(out.loc[live, "label"], expect[live.to_numpy()])
    np.testing.assert_array_equal(out["ret_long"], plain["ret_long"])  # returns untouched


def test_meta_with_extra_horizons_relabels_every_horizon():
    bars = _up_then_down()
    out = TripleBarrierLabeler(horizon=5, width="atr", atr_period=3, horizons=[2], upper_mult=1.1,
                               lower_mult=1.1, meta={"lookback": 3}).label(bars, FREE)
    live = out["exit_idx_h2"] >= 0
    assert set(out.loc[live, "label_h2"].unique()) == {0, 1}
    assert (out["exit_idx_h2"].iloc[:3] == -1).all()


@pytest.mark.parametrize("bad", [{"side_from": "model"}, {"lookback": 0}, {"lookback": 2.5},
                                 {"window": 3}])
def test_bad_meta_config_names_the_key(bad):
    with pytest.raises(FactoryError, match=r"`labeling.meta"):
        TripleBarrierLabeler(meta=bad)
