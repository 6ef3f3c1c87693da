"""Known values for the momentum, trend, volatility-estimator and band feature groups.

Each expected value is worked out by hand (or by a direct, loop-free formula on a few bars)
in the test itself, so the indicator *definitions* are pinned down, not just their code. The
last tests check on long series that every group's registered warm-up is exact: the row
``warmup - 1`` has a NaN and every row from ``warmup`` on is finite, flat bars included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.synthetic import SyntheticSource
from factory.features.catalog import bands, momentum, trend, vol_estimators
from factory.features.registry import catalog

MODULES = {m.__name__ for m in (momentum, trend, vol_estimators, bands)}
LN2 = np.log(2.0)


def make_bars(o, h, lo, c) -> pd.DataFrame:
    idx = pd.date_range("2024-01-08 14:30", periods=len(c), freq="5min", tz="UTC",
                        name="timestamp")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c,
                         "volume": np.full(len(c), 100.0)}, index=idx, dtype=np.float64)


# Five bars used by several hand computations. True ranges (TR_0 undefined):
#   TR_1 = max(11-9, |11-9|, |9-9|)          = 2
#   TR_2 = max(10.5-7, |10.5-10|, |7-10|)    = 3.5
#   TR_3 = max(9-6.5, |9-8|, |6.5-8|)        = 2.5
#   TR_4 = max(11-8.5, |11-8.5|, |8.5-8.5|)  = 2.5
# Wilder ATR(2) (seeded with the mean of the first two TRs):
#   ATR_2 = (2 + 3.5) / 2 = 2.75, ATR_3 = (2.75 + 2.5) / 2 = 2.625, ATR_4 = 2.5625
FIVE = make_bars(o=[9.0, 9.0, 10.0, 8.0, 8.5], h=[10.0, 11.0, 10.5, 9.0, 11.0],
                 lo=[8.0, 9.0, 7.0, 6.5, 8.5], c=[9.0, 10.0, 8.0, 8.5, 10.5])
ATR2 = np.array([np.nan, np.nan, 2.75, 2.625, 2.5625])


def line_bars(c) -> pd.DataFrame:
    c = np.asarray(c, dtype=np.float64)
    return make_bars(c, c + 0.5, c - 0.5, c)


# ---------------------------------------------------------------- momentum


def test_roc():
    out = momentum.roc(line_bars([100.0, 110.0, 121.0, 133.1]), periods=(1, 2))
    np.testing.assert_allclose(out["roc_1"], [np.nan, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(out["roc_2"], [np.nan, np.nan, 0.21, 0.21])


def test_mom_atr():
    out = momentum.mom_atr(FIVE, periods=(1, 2), atr_period=2)
    np.testing.assert_allclose(out["mom_atr_1"], [np.nan, np.nan, (8 - 10) / 2.75,
                                                  (8.5 - 8) / 2.625, (10.5 - 8.5) / 2.5625])
    np.testing.assert_allclose(out["mom_atr_2"], [np.nan, np.nan, (8 - 9) / 2.75,
                                                  (8.5 - 10) / 2.625, (10.5 - 8) / 2.5625])


def test_stochastic():
    # period 3: HH/LL over 3 bars; fast %K_2 = (8-7)/(11-7) = 0.25,
    # %K_3 = (8.5-6.5)/(11-6.5) = 2/4.5, %K_4 = (10.5-6.5)/(11-6.5) = 4/4.5
    out = momentum.stochastic(FIVE, period=3, smooth_k=2, smooth_d=2)
    k3, k4 = (0.25 + 2 / 4.5) / 2, (2 / 4.5 + 4 / 4.5) / 2
    np.testing.assert_allclose(out["stoch_k_3"], [np.nan, np.nan, np.nan, k3, k4])
    np.testing.assert_allclose(out["stoch_d_3"], [np.nan] * 4 + [(k3 + k4) / 2])


def test_williams_r():
    out = momentum.willr(FIVE, periods=(3,))["willr_3"]
    # row 2: HH=11, LL=7, close 8 -> -(11-8)/4; row 4: HH=11, LL=6.5, close 10.5
    np.testing.assert_allclose(out, [np.nan, np.nan, -0.75, -2.5 / 4.5, -0.5 / 4.5])
    flat = momentum.willr(make_bars(*[[5.0] * 4] * 4), periods=(3,))["willr_3"]
    np.testing.assert_array_equal(flat[2:], [-0.5, -0.5])  # zero range: the midpoint


def test_cci():
    # typical prices 9, 10, 8.5: mean 55/6, mean abs dev (1/6 + 5/6 + 4/6)/3 = 5/9
    out = momentum.cci(FIVE, periods=(3,))["cci_3"]
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2], (8.5 - 55 / 6) / (0.015 * 5 / 9) / 100)
    np.testing.assert_allclose(out[2], -0.8)


def test_adx_di_hand():
    # +DM / -DM: bar1 (1, 0), bar2 (0, 2), bar3 (0, 0.5), bar4 (2, 0). TA-Lib's Wilder
    # sums: seed with the first period-1 moves, then S <- S - S/period + x each bar.
    out = momentum.adx(FIVE, period=2)
    p2, m2, t2 = 1 - 0.5 + 0, 0 + 2, 2 - 1 + 3.5  # 0.5, 2, 4.5
    p3, m3, t3 = p2 / 2, m2 / 2 + 0.5, t2 / 2 + 2.5  # 0.25, 1.5, 4.75
    p4, m4, t4 = p3 / 2 + 2, m3 / 2, t3 / 2 + 2.5  # 2.125, 0.75, 4.875
    np.testing.assert_allclose(out["plus_di_2"][2:], [p2 / t2, p3 / t3, p4 / t4])
    np.testing.assert_allclose(out["minus_di_2"][2:], [m2 / t2, m3 / t3, m4 / t4])
    dx = [abs(p - m) / (p + m) for p, m in ((p2, m2), (p3, m3), (p4, m4))]
    adx3 = (dx[0] + dx[1]) / 2  # ADX seeded with the mean of the first `period` DX
    np.testing.assert_allclose(out["adx_2"][3:], [adx3, (adx3 + dx[2]) / 2])
    assert np.isnan(out["adx_2"][:3]).all() and np.isnan(out["plus_di_2"][:2]).all()


def test_adx_steady_trend():
    # +DM = 1, -DM = 0 and TR = 2 on every bar: +DI = 1/2, -DI = 0, DX = ADX = 1
    t = np.arange(40.0)
    up = momentum.adx(make_bars(9.5 + t, 10 + t, 8 + t, 9.5 + t), period=5)
    np.testing.assert_allclose(up["plus_di_5"][5:], 0.5)
    np.testing.assert_allclose(up["minus_di_5"][5:], 0.0)
    np.testing.assert_allclose(up["adx_5"][9:], 1.0)


# ---------------------------------------------------------------- trend


def test_ma_ratio():
    out = trend.ma_ratio(line_bars([1.0, 2.0, 3.0, 4.0, 5.0]), windows=(2, 3))
    np.testing.assert_allclose(out["sma_ratio_2"][1:], [2 / 1.5 - 1, 3 / 2.5 - 1, 4 / 3.5 - 1,
                                                        5 / 4.5 - 1])
    # EMA(3): seed SMA(1, 2, 3) = 2 at row 2, then alpha = 1/2: 3, 4
    np.testing.assert_allclose(out["ema_ratio_3"][2:], [3 / 2 - 1, 4 / 3 - 1, 5 / 4 - 1])
    assert np.isnan(out["ema_ratio_3"][:2]).all()


def test_ma_slope_of_exponential_growth_is_the_growth_rate():
    c = 100.0 * np.exp(0.01 * np.arange(20))  # SMA_n[t] = c_t x const -> log slope 0.01
    out = trend.ma_slope(line_bars(c), windows=(3,), lag=2)["sma_slope_3"]
    assert np.isnan(out[:4]).all()
    np.testing.assert_allclose(out[4:], 0.01, rtol=1e-9)


def test_ma_cross():
    out = trend.ma_cross(line_bars([1.0, 2.0, 3.0, 4.0, 5.0]), pairs=((2, 4),))
    np.testing.assert_allclose(out["sma_x_2_4"][3:], [3.5 / 2.5 - 1, 4.5 / 3.5 - 1])
    # EMA(2) (alpha 2/3): 1.5, 2.5, 3.5, 4.5; EMA(4) (alpha 0.4): 2.5 at row 3, then 3.5
    np.testing.assert_allclose(out["ema_x_2_4"][3:], [3.5 / 2.5 - 1, 4.5 / 3.5 - 1])


def test_linreg_on_a_straight_line_is_its_slope():
    c = 50.0 + 2.0 * np.arange(30)
    out = trend.linreg(line_bars(c), windows=(5, 10))
    for n in (5, 10):
        assert np.isnan(out[f"lr_slope_{n}"][: n - 1]).all()
        np.testing.assert_allclose(out[f"lr_slope_{n}"][n - 1 :], 2.0 / c[n - 1 :])
        np.testing.assert_allclose(out[f"lr_r2_{n}"][n - 1 :], 1.0)


def test_linreg_matches_polyfit_on_noise():
    c = 100 + np.cumsum(np.random.default_rng(0).normal(size=60))
    out = trend.linreg(line_bars(c), windows=(20,))
    for t in (19, 37, 59):
        y = c[t - 19 : t + 1]
        slope = np.polyfit(np.arange(20.0), y, 1)[0]
        np.testing.assert_allclose(out["lr_slope_20"][t], slope / c[t], rtol=1e-9)
        r = np.corrcoef(np.arange(20.0), y)[0, 1]
        np.testing.assert_allclose(out["lr_r2_20"][t], r * r, rtol=1e-9)
    flat = trend.linreg(line_bars(np.full(8, 7.0)), windows=(5,))["lr_r2_5"]
    np.testing.assert_array_equal(flat[4:], 0.0)  # no variation: R^2 defined as 0


def test_aroon():
    h = np.array([1.0, 5.0, 2.0, 3.0, 4.0])
    out = trend.aroon(make_bars(h, h, h - 1, h), period=3)
    # row 3: window rows 0..3, high at row 1 (2 bars ago), low at row 0 (3 bars ago)
    # row 4: window rows 1..4, high at row 1 (3 bars ago), low at row 2 (2 bars ago)
    np.testing.assert_allclose(out["aroon_up_3"][3:], [1 / 3, 0.0])
    np.testing.assert_allclose(out["aroon_down_3"][3:], [0.0, 1 / 3])


# ---------------------------------------------------------------- volatility estimators

THREE = make_bars(o=[100.0, 101.0, 99.0], h=[102.0, 103.0, 101.0], lo=[99.0, 98.5, 97.0],
                  c=[101.0, 99.5, 100.0])


def test_parkinson_three_bars():
    hl = np.log([102 / 99, 103 / 98.5, 101 / 97])
    out = vol_estimators.parkinson(THREE, windows=(3,))["park_vol_3"]
    np.testing.assert_allclose(out, [np.nan, np.nan, np.sqrt(np.mean(hl**2) / (4 * LN2))])


def test_garman_klass_three_bars():
    hl, co = np.log([102 / 99, 103 / 98.5, 101 / 97]), np.log([101 / 100, 99.5 / 101, 100 / 99])
    var = np.mean(0.5 * hl**2 - (2 * LN2 - 1) * co**2)
    out = vol_estimators.garman_klass(THREE, windows=(3,))["gk_vol_3"]
    np.testing.assert_allclose(out, [np.nan, np.nan, np.sqrt(var)])


def _rs(o, h, lo, c):
    return np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)


def test_rogers_satchell_three_bars():
    o, h, lo, c = (THREE[k].to_numpy() for k in ("open", "high", "low", "close"))
    out = vol_estimators.rogers_satchell(THREE, windows=(2, 3))
    np.testing.assert_allclose(out["rs_vol_3"][2], np.sqrt(np.mean(_rs(o, h, lo, c))))
    np.testing.assert_allclose(out["rs_vol_2"][1:], np.sqrt([
        (_rs(100, 102, 99, 101) + _rs(101, 103, 98.5, 99.5)) / 2,
        (_rs(101, 103, 98.5, 99.5) + _rs(99, 101, 97, 100)) / 2]))
    # a bar opening at its low and closing at its high is pure drift: RS = 0 (drift-free)
    up = make_bars([10.0], [11.0], [10.0], [11.0])
    np.testing.assert_allclose(vol_estimators.rogers_satchell(up, windows=(1,))["rs_vol_1"],
                               [0.0], atol=1e-15)


def test_yang_zhang_against_direct_formula():
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 8)))
    o = np.r_[100.0, c[:-1] * np.exp(rng.normal(0, 0.003, 7))]
    h, lo = np.maximum(o, c) * 1.004, np.minimum(o, c) * 0.995
    out = vol_estimators.yang_zhang(make_bars(o, h, lo, c), windows=(4,))["yz_vol_4"]
    assert np.isnan(out[:4]).all()
    n, k = 4, 0.34 / (1.34 + 5 / 3)
    for t in range(4, 8):
        s = slice(t - n + 1, t + 1)
        overnight = np.log(o[s] / c[t - n : t])
        open_close = np.log(c[s] / o[s])
        var = (np.var(overnight, ddof=1) + k * np.var(open_close, ddof=1)
               + (1 - k) * np.mean(_rs(o[s], h[s], lo[s], c[s])))
        np.testing.assert_allclose(out[t], np.sqrt(var), rtol=1e-10)


def test_realised_vol():
    r = np.array([0.01, -0.02, 0.03])
    c = 100 * np.exp(np.r_[0.0, np.cumsum(r)])
    out = vol_estimators.realised_vol(line_bars(c), windows=(2, 3))
    np.testing.assert_allclose(out["rv_3"], [np.nan] * 3 + [np.sqrt(0.0014)])
    np.testing.assert_allclose(out["rv_2"][2:], np.sqrt([0.0005, 0.0013]))


def test_vol_of_vol_against_direct_formula():
    c = 100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, 12)))
    out = vol_estimators.vol_of_vol(line_bars(c), vol_window=3, windows=(4,))["volvol_3_4"]
    r = np.diff(np.log(c))  # r[j] is the return into bar j + 1
    v = {t: np.sqrt(np.mean(r[t - 3 : t] ** 2)) for t in range(3, 12)}
    assert np.isnan(out[:6]).all()
    for t in range(6, 12):
        w = np.array([v[j] for j in range(t - 3, t + 1)])
        np.testing.assert_allclose(out[t], np.std(w, ddof=1) / np.mean(w), rtol=1e-10)


def test_range_atr():
    out = vol_estimators.range_atr(FIVE, period=2, short=1, long=2)
    np.testing.assert_allclose(out["range_atr_2"][2:], [3.5 / 2.75, 2.5 / 2.625, 2.5 / 2.5625])
    np.testing.assert_allclose(out["atr_ratio_1_2"][2:], [3.5 / 2.75, 2.5 / 2.625, 2.5 / 2.5625])


# ---------------------------------------------------------------- bands


def test_keltner():
    # EMA(2) of closes: 9.5 at row 1, then 8 x 2/3 + 9.5 / 3 = 8.5; ATR(2) at row 2 = 2.75
    out = bands.keltner(FIVE, periods=(2,), mult=1.0)
    np.testing.assert_allclose(out["kc_pos_2"][2], (8 - (8.5 - 2.75)) / 5.5)
    np.testing.assert_allclose(out["kc_width_2"][2], 5.5 / 8.5)
    assert np.isnan(out["kc_pos_2"][:2]).all()


def test_donchian_five_bars():
    out = bands.donchian(FIVE, windows=(5, 3))
    # row 4: HH_5 = 11, LL_5 = 6.5, close 10.5
    np.testing.assert_allclose(out["dc_pos_5"], [np.nan] * 4 + [4 / 4.5])
    np.testing.assert_allclose(out["dc_width_5"], [np.nan] * 4 + [4.5 / 10.5])
    np.testing.assert_allclose(out["dc_pos_3"][2:], [0.25, 2 / 4.5, 4 / 4.5])


def test_dist_hilo():
    out = bands.dist_hilo(FIVE, windows=(3,), atr_period=2)
    np.testing.assert_allclose(out["dist_high_3"][2:], np.array([3, 2.5, 0.5]) / ATR2[2:])
    np.testing.assert_allclose(out["dist_low_3"][2:], np.array([1, 2, 4]) / ATR2[2:])


def test_zero_range_bars_get_documented_values():
    flat = line_bars(np.full(12, 20.0)).assign(high=20.0, low=20.0)
    assert np.all(bands.donchian(flat, windows=(3,))["dc_pos_3"][2:] == 0.5)
    assert np.all(bands.keltner(flat, periods=(3,))["kc_pos_3"][3:] == 0.5)
    assert np.all(bands.dist_hilo(flat, windows=(3,), atr_period=2)["dist_high_3"][2:] == 0)
    assert np.all(momentum.stochastic(flat, 3, 2, 2)["stoch_k_3"][3:] == 0.5)
    assert np.all(momentum.mom_atr(flat, periods=(2,), atr_period=2)["mom_atr_2"][2:] == 0)
    ratios = vol_estimators.range_atr(flat, period=2, short=2, long=3)
    assert np.all(ratios["range_atr_2"][3:] == 1) and np.all(ratios["atr_ratio_2_3"][3:] == 1)
    assert np.all(vol_estimators.vol_of_vol(flat, 2, (3,))["volvol_2_3"][4:] == 0)
    assert np.all(vol_estimators.parkinson(flat, (3,))["park_vol_3"][2:] == 0)


# ---------------------------------------------------------------- warm-ups


def _my_groups() -> list[str]:
    return sorted(g for g, grp in catalog().items() if grp.fn.__module__ in MODULES)


CUSTOM = {  # non-default params, to check the warm-up formulas beyond the defaults
    "roc": {"periods": [7, 3]}, "mom_atr": {"periods": [3], "atr_period": 20},
    "stochastic": {"period": 5, "smooth_k": 4, "smooth_d": 2}, "willr": {"periods": [9]},
    "cci": {"periods": [7, 33]}, "adx": {"period": 9}, "ma_ratio": {"windows": [3, 30]},
    "ma_slope": {"windows": [7], "lag": 3}, "ma_cross": {"pairs": [[3, 8], [2, 40]]},
    "linreg": {"windows": [6]}, "aroon": {"period": 10}, "parkinson": {"windows": [7]},
    "garman_klass": {"windows": [7]}, "rogers_satchell": {"windows": [7]},
    "yang_zhang": {"windows": [7, 3]}, "realised_vol": {"windows": [8]},
    "vol_of_vol": {"vol_window": 5, "windows": [9]},
    "range_atr": {"period": 30, "short": 3, "long": 10}, "keltner": {"periods": [9], "mult": 1.5},
    "donchian": {"windows": [70]}, "dist_hilo": {"windows": [5], "atr_period": 12},
}


@pytest.fixture(scope="module")
def long_bars() -> dict[str, pd.DataFrame]:
    bars = SyntheticSource(days=10, seed=5).load().bars["MGC"].iloc[:1500]
    flat = bars.copy()
    flat.iloc[:130, :4] = 2000.0  # flat from the first bar through the longest warm-up
    flat.iloc[600:800, :4] = 2010.0
    return {"synthetic": bars, "flat": flat}


def test_catalog_covers_every_group():
    assert set(CUSTOM) == set(_my_groups())


@pytest.mark.parametrize("group", sorted(CUSTOM))
@pytest.mark.parametrize("which", ["synthetic", "flat"])
@pytest.mark.parametrize("custom", [False, True])
def test_warmup_is_exact(long_bars, group, which, custom):
    grp = catalog()[group]
    params = CUSTOM[group] if custom else {}
    warm = grp.warmup_bars(params)
    cols = grp.fn(long_bars[which], **params)
    values = np.column_stack([np.asarray(v, dtype=np.float64) for v in cols.values()])
    defined = np.isfinite(values).all(axis=1)
    assert warm >= 1 and not defined[warm - 1], f"{group}: row warmup-1 is fully defined"
    assert defined[warm:].all(), f"{group}: undefined at {np.flatnonzero(~defined[warm:])[:5]}"
