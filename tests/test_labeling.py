"""Triple-barrier labels and uniqueness weights on hand-built paths (values worked by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.labeling.triple_barrier import TripleBarrierLabeler, triple_barrier
from factory.labeling.weights import average_uniqueness

OPEN = np.array([100, 100, 100.5, 101, 99, 100])
HIGH = np.array([100.2, 100.6, 101.2, 101.5, 99.5, 100])
LOW = np.array([99.8, 99.7, 100.3, 100.8, 98.5, 99.5])
CLOSE = np.array([100, 100.5, 101, 101.2, 99, 100])
ONES = np.ones(6)


def test_upper_first_lower_first_with_gap_and_incomplete_tail():
    out = triple_barrier(OPEN, HIGH, LOW, CLOSE, ONES, ONES, horizon=3)
    # bar 0: entry 100 (open of bar 1), upper 101 touched at bar 2 -> exit 101
    # bar 1: entry 100.5, upper 101.5 touched at bar 3 before lower 99.5 at bar 4
    # bar 2: entry 101, lower 100: bar 4 opens at 99 (gap through) -> fills at 99
    np.testing.assert_array_equal(out["label"], [1, 1, -1, 0, 0, 0])
    np.testing.assert_array_equal(out["exit_idx"], [2, 3, 4, -1, -1, -1])
    np.testing.assert_array_equal(out["touch"][:3], [1, 1, -1])
    np.testing.assert_allclose(out["ret_long"][:3], [0.01, 1 / 100.5, 99 / 101 - 1])
    np.testing.assert_allclose(out["ret_short"][:3], [-0.01, -1 / 100.5, 1 - 99 / 101])
    assert np.isnan(out["ret_long"][3:]).all()


def test_vertical_barrier_zero_and_sign_modes():
    wide = np.full(6, 10.0)
    zero = triple_barrier(OPEN, HIGH, LOW, CLOSE, wide, wide, horizon=2)
    # bar 0: entry 100, no touch within bars 1..2 -> exit at close of bar 2 = 101
    assert zero["touch"][0] == 0 and zero["exit_idx"][0] == 2
    np.testing.assert_allclose(zero["ret_long"][0], 0.01)
    assert zero["label"][0] == 0
    sign = triple_barrier(OPEN, HIGH, LOW, CLOSE, wide, wide, horizon=2, vertical="sign")
    # bar 0 +1% long; bar 2: entry 101 -> close of bar 4 = 99: short wins
    assert sign["label"][0] == 1 and sign["label"][2] == -1
    with_cost = triple_barrier(OPEN, HIGH, LOW, CLOSE, wide, wide, horizon=2, cost_points=1.5,
                               vertical="sign")
    assert with_cost["label"][0] == 0  # +1.00 points does not clear a 1.50 round trip


def test_costs_push_a_small_barrier_win_to_zero():
    narrow = np.full(6, 0.5)
    free = triple_barrier(OPEN, HIGH, LOW, CLOSE, narrow, narrow, horizon=3)
    costly = triple_barrier(OPEN, HIGH, LOW, CLOSE, narrow, narrow, horizon=3, cost_points=0.6)
    assert free["label"][0] == 1 and free["touch"][0] == 1  # upper 100.5 hit at bar 1
    assert costly["label"][0] == 0 and costly["touch"][0] == 1  # 0.5 gain < 0.6 cost
    np.testing.assert_allclose(costly["cost"][0], 0.6 / 100)


def test_both_barriers_in_one_bar_is_ambiguous_and_conservative():
    o = np.array([100, 100, 100, 100.0])
    h = np.array([100, 100, 102, 100.0])
    lo = np.array([100, 100, 98, 100.0])
    c = np.array([100, 100, 100, 100.0])
    out = triple_barrier(o, h, lo, c, np.ones(4), np.ones(4), horizon=2)
    assert out["touch"][0] == 2 and out["label"][0] == 0 and out["exit_idx"][0] == 2
    np.testing.assert_allclose([out["ret_long"][0], out["ret_short"][0]], [-0.01, -0.01])


def test_labeler_uses_atr_per_symbol_multipliers_and_costs():
    rng = np.random.default_rng(0)
    close = 100 + np.cumsum(rng.normal(0, 0.3, 400))
    idx = pd.date_range("2024-01-02", periods=400, freq="5min", tz="UTC")
    bars = pd.DataFrame({"open": np.r_[close[0], close[:-1]], "high": close + 0.2,
                         "low": close - 0.2, "close": close, "volume": 100.0}, index=idx)
    bars["high"] = bars[["open", "close"]].max(axis=1) + 0.2
    bars["low"] = bars[["open", "close"]].min(axis=1) - 0.2
    inst = Instrument("MES", tick_size=0.25, point_value=5.0, commission=0.62, slippage_ticks=1)
    lab = TripleBarrierLabeler(horizon=10, per_symbol={"MES": {"upper_mult": 1.5}})
    assert lab.multipliers("MES") == (1.5, 1.0) and lab.multipliers("MGC") == (1.0, 1.0)
    out = lab.label(bars, inst)
    assert (out["exit_idx"].iloc[:14] == -1).all()  # ATR warm-up
    assert (out["exit_idx"].iloc[-10:] == -1).all()  # incomplete window
    valid = out["exit_idx"] >= 0
    assert (out.loc[valid, "exit_idx"] > np.flatnonzero(valid)).all()
    assert (out.loc[valid, "exit_idx"] <= np.flatnonzero(valid) + 10).all()
    next_open = bars["open"].shift(-1)[valid]
    np.testing.assert_allclose(out.loc[valid, "cost"], 2 * (0.25 + 0.62 / 5) / next_open)
    assert set(out.loc[valid, "label"].unique()) <= {-1, 0, 1}


@pytest.mark.parametrize("bad", [0, -5, 2.5, "abc", True])
def test_horizon_must_be_positive_int(bad):
    with pytest.raises(FactoryError, match=r"`horizon` must be a positive int.*try `horizon=20`"):
        TripleBarrierLabeler(horizon=bad)


def test_average_uniqueness_hand_computed():
    # spans [0,2], [1,3], [4,4] over 5 bars: concurrency 1,2,2,1,1
    u = average_uniqueness(np.array([0, 1, 4]), np.array([2, 3, 4]), 5)
    np.testing.assert_allclose(u, [2 / 3, 2 / 3, 1.0])
