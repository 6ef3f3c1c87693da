"""Triple-barrier labels and uniqueness weights on hand-built paths (values worked by hand),
and the compiled kernel against the numpy reference (bit for bit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.labeling.kernel import LABEL_COLUMNS, triple_barrier_fast, triple_barrier_multi
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
    lab = TripleBarrierLabeler(horizon=10, width="atr", per_symbol={"MES": {"upper_mult": 1.5}})
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


# ----------------------------------------------------------------------------------------
# compiled kernel == numpy reference, bit for bit
# ----------------------------------------------------------------------------------------
def _rough_path(n: int, seed: int):
    """Random bars with gaps (open far from the previous close), wide and narrow ranges."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.4, n))
    gap = rng.random(n) < 0.05
    open_ = np.r_[close[0], close[:-1]] + np.where(gap, rng.normal(0, 2.0, n), 0.0)
    high = np.maximum(open_, close) + rng.exponential(0.3, n)
    low = np.minimum(open_, close) - rng.exponential(0.3, n)
    width = np.abs(rng.normal(1.0, 0.5, n))
    width[:5] = np.nan  # ATR warm-up: never touches, vertical exits
    return open_, high, low, close, width


def _assert_identical(fast: dict, ref: dict, what: str) -> None:
    assert set(fast) == set(ref) == set(LABEL_COLUMNS)
    for key in LABEL_COLUMNS:
        assert fast[key].dtype == ref[key].dtype, (what, key)
        np.testing.assert_array_equal(fast[key], ref[key], err_msg=f"{what}: {key}")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("vertical", ["zero", "sign"])
def test_kernel_is_bit_identical_to_numpy_reference(seed, vertical):
    o, h, lo, c, w = _rough_path(3000, seed)
    touches = set()
    for horizon in (1, 3, 20, 45):
        for up_mult, dn_mult, cost in ((1.0, 1.0, 0.0), (1.5, 0.7, 0.3), (0.2, 0.2, 0.05)):
            args = (o, h, lo, c, up_mult * w, dn_mult * w, horizon, cost, vertical)
            ref = triple_barrier(*args)
            _assert_identical(triple_barrier_fast(*args), ref, f"h={horizon} {up_mult}")
            touches |= set(np.unique(ref["touch"]).tolist())
    assert touches == {-1, 0, 1, 2}  # upper, lower, vertical and ambiguous all exercised


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 25])
def test_kernel_short_series_match_reference(n):
    o, h, lo, c, w = (a[:n] for a in _rough_path(30, 3))
    for horizon in (1, 3, 4, 5):
        ref = triple_barrier(o, h, lo, c, w, w, horizon, 0.1)
        _assert_identical(triple_barrier_fast(o, h, lo, c, w, w, horizon, 0.1), ref, f"n={n}")


def test_hand_built_path_through_the_kernel():
    out = triple_barrier_fast(OPEN, HIGH, LOW, CLOSE, ONES, ONES, horizon=3)
    np.testing.assert_array_equal(out["label"], [1, 1, -1, 0, 0, 0])
    np.testing.assert_array_equal(out["exit_idx"], [2, 3, 4, -1, -1, -1])
    np.testing.assert_allclose(out["ret_long"][:3], [0.01, 1 / 100.5, 99 / 101 - 1])


def test_multi_horizon_pass_equals_one_call_per_horizon():
    o, h, lo, c, w = _rough_path(2000, 4)
    multi = triple_barrier_multi(o, h, lo, c, 1.5 * w, w, horizons=(20, 5, 15, 10), cost_points=0.2)
    assert list(multi) == [5, 10, 15, 20]
    for horizon in (5, 10, 15, 20):
        _assert_identical(multi[horizon], triple_barrier(o, h, lo, c, 1.5 * w, w, horizon, 0.2),
                          f"h={horizon}")
    # a touch at bar t+7 is a vertical exit for horizon 5 and the same exit for 10 and up
    t = int(np.flatnonzero((multi[20]["exit_idx"] - np.arange(2000) == 7)
                           & (multi[20]["touch"] == 1))[0])
    assert multi[5]["touch"][t] == 0 and multi[5]["exit_idx"][t] == t + 5
    assert multi[10]["exit_idx"][t] == multi[15]["exit_idx"][t] == t + 7


@pytest.mark.parametrize("n", [0, 3, 6, 12, 30, 500])
def test_multi_horizon_short_series_and_threads(n):
    """Events whose longest window runs past the data still get their shorter horizons;
    the result does not depend on how the events are split over threads."""
    o, h, lo, c, w = (a[:n] for a in _rough_path(500, 7))
    for threads in (1, 3):
        multi = triple_barrier_multi(o, h, lo, c, w, 0.8 * w, (2, 7, 11), 0.1, "sign",
                                     threads=threads)
        for horizon in (2, 7, 11):
            ref = triple_barrier(o, h, lo, c, w, 0.8 * w, horizon, 0.1, "sign")
            _assert_identical(multi[horizon], ref, f"n={n} h={horizon} threads={threads}")


@pytest.mark.parametrize("bad", [[0], [5, -1], [], ["5"], [2.5], 0, [True]])
def test_bad_horizons_name_the_key(bad):
    o, h, lo, c, w = _rough_path(50, 5)
    with pytest.raises(FactoryError, match=r"`labeling.horizons` must be a list of positive"):
        triple_barrier_multi(o, h, lo, c, w, w, horizons=bad)
    with pytest.raises(FactoryError, match=r"`labeling.horizons`"):
        TripleBarrierLabeler(horizons=bad)


def _bars(n: int = 600, seed: int = 0) -> pd.DataFrame:
    o, h, lo, c, _ = _rough_path(n, seed)
    idx = pd.date_range("2024-01-02", periods=n, freq="5min", tz="UTC")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1.0}, index=idx)


MES = Instrument("MES", tick_size=0.25, point_value=5.0, commission=0.62, slippage_ticks=1)


def test_labeler_horizons_add_suffixed_columns_and_keep_the_primary_ones():
    bars = _bars()
    plain = TripleBarrierLabeler(horizon=10).label(bars, MES)
    multi = TripleBarrierLabeler(horizon=10, horizons=[5, 10, 20]).label(bars, MES)
    pd.testing.assert_frame_equal(multi[list(plain.columns)], plain)  # unchanged for Phase 1
    for horizon in (5, 10, 20):
        alone = TripleBarrierLabeler(horizon=horizon).label(bars, MES)
        for col in LABEL_COLUMNS:
            np.testing.assert_array_equal(multi[f"{col}_h{horizon}"], alone[col], err_msg=col)
    assert (multi["exit_idx_h20"].iloc[:50] == -1).all()  # vol warm-up on every horizon
    assert (multi["exit_idx_h20"].iloc[50:-20] >= 0).all()
    assert (multi["exit_idx_h5"].iloc[-5:] == -1).all() and multi["exit_idx_h5"].iloc[-6] >= 0


def test_labeler_matches_numpy_reference_with_atr_widths():
    bars = _bars(800, 6)
    lab = TripleBarrierLabeler(horizon=12, width="atr", per_symbol={"MES": {"upper_mult": 1.5}})
    out = lab.label(bars, MES)
    o, h, lo, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    atr = talib.ATR(h, lo, c, timeperiod=14)
    ref = triple_barrier(o, h, lo, c, 1.5 * atr, atr, 12, MES.round_trip_cost_points)
    ref["exit_idx"][np.isnan(atr)] = -1
    for col in LABEL_COLUMNS:
        np.testing.assert_array_equal(out[col].to_numpy(), ref[col], err_msg=col)
