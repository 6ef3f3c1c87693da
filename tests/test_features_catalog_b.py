"""Known values for the volume, microstructure, wavelet, temporal and fracdiff groups:
hand-computed small cases against each definition, and exact warm-ups on a long series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from factory.data.synthetic import SyntheticSource
from factory.features.catalog import fracdiff as fd
from factory.features.catalog import microstructure as ms
from factory.features.catalog import temporal as tp
from factory.features.catalog import volume as vo
from factory.features.catalog import wavelet as wv
from factory.features.registry import catalog

MINE = {
    "obv": 3, "volume_percentile": 2, "session_vwap": 1, "rolling_vwap": 2, "mfi": 2,
    "volume_ratio": 3, "amihud": 2, "roll_spread": 2, "kyle_lambda": 2, "corwin_schultz": 2,
    "haar_energy": 12, "session": 5, "ibs": 3, "fracdiff": 1,
}


def make_bars(close, high=None, low=None, volume=None, open_=None, index=None) -> pd.DataFrame:
    close = np.asarray(close, dtype=np.float64)
    n = close.size
    if index is None:
        index = pd.date_range("2024-01-02 00:00", periods=n, freq="5min", tz="UTC")
    return pd.DataFrame({
        "open": close if open_ is None else np.asarray(open_, float),
        "high": close if high is None else np.asarray(high, float),
        "low": close if low is None else np.asarray(low, float),
        "close": close,
        "volume": np.full(n, 100.0) if volume is None else np.asarray(volume, float),
    }, index=pd.DatetimeIndex(index, name="timestamp"))


def gap_index() -> pd.DatetimeIndex:
    """Three bars before the 22:00 UTC break, three after the 23:00 reopen."""
    stamps = ["21:45", "21:50", "21:55", "23:00", "23:05", "23:10"]
    return pd.DatetimeIndex([pd.Timestamp(f"2024-01-02 {s}", tz="UTC") for s in stamps])


# --- temporal ---------------------------------------------------------------------------

def test_session_detection_and_clock():
    bars = make_bars([10, 11, 12, 13, 12, 14], high=[11, 12, 12, 14, 13, 15],
                     low=[9, 10, 11, 12, 11, 12], open_=[10, 10, 11, 12.5, 13, 12],
                     index=gap_index())
    out = tp.session(bars)
    np.testing.assert_array_equal(out["sess_start"], [1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(out["sess_minutes"], [0, 5, 10, 0, 5, 10])
    np.testing.assert_array_equal(out["sess_bars"], [0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(out["sess_ret"], np.log([1.0, 1.1, 1.2, 13 / 12.5, 12 / 12.5,
                                                        14 / 12.5]))
    # running session range: bar 4 sees [11, 14] -> (12 - 11) / 3; bar 5 sees [11, 15]
    np.testing.assert_allclose(out["sess_pos"], [0.5, 2 / 3, 1.0, 0.5, 1 / 3, 0.75])


def test_session_starts_outage_threshold_and_hourly_bars():
    base = pd.Timestamp("2024-01-02 00:00", tz="UTC")
    minutes = [0, 5, 10, 30, 35, 75, 80]  # 15 minutes missing (no), then 35 (yes)
    idx = pd.DatetimeIndex([base + pd.Timedelta(minutes=m) for m in minutes])
    np.testing.assert_array_equal(tp.session_starts(idx), [1, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(tp.session_starts(idx, 10), [1, 0, 0, 1, 0, 1, 0])
    hourly = pd.DatetimeIndex([base + pd.Timedelta(hours=h) for h in (0, 1, 2, 3, 5, 6)])
    np.testing.assert_array_equal(tp.session_starts(hourly), [1, 0, 0, 0, 1, 0])


def test_ibs_values_and_flat_bar():
    bars = make_bars([10, 12, 7, 5], high=[12, 12, 8, 5], low=[8, 10, 6, 5])
    out = tp.ibs(bars, windows=(2,))
    np.testing.assert_allclose(out["ibs"], [0.5, 1.0, 0.5, 0.5])  # last bar: high == low
    np.testing.assert_allclose(out["ibs_mean_2"], [np.nan, 0.75, 0.75, 0.5])


# --- volume -----------------------------------------------------------------------------

def test_obv_window_change_over_volume():
    bars = make_bars([10, 11, 11, 10, 12], volume=[100, 200, 300, 400, 500])
    out = vo.obv(bars, windows=(2, 4))
    np.testing.assert_allclose(out["obv_2"], [np.nan, np.nan, 200 / 500, -400 / 700, 100 / 900])
    np.testing.assert_allclose(out["obv_4"], [np.nan] * 4 + [300 / 1400])
    zero = vo.obv(make_bars([10, 11, 12], volume=[0, 0, 0]), windows=(2,))["obv_2"]
    np.testing.assert_array_equal(zero, [np.nan, np.nan, 0.0])


def test_volume_percentile_ties_half():
    out = vo.volume_percentile(make_bars(np.ones(5), volume=[5, 3, 5, 1, 9]), windows=(3,))
    np.testing.assert_allclose(out["vpct_3"], [np.nan, np.nan, 0.75, 0.0, 1.0])


def test_volume_percentile_equals_the_window_matrix_bit_for_bit():
    v = np.round(np.random.default_rng(3).lognormal(3, 1, 500))
    v[[40, 41, 300]] = np.nan  # NaN compares false either way
    whole = vo.trailing_percentile(v, 20)
    win = sliding_window_view(v, 20)  # the former vectorised definition, window by window
    last = win[:, -1:]
    ref = ((win < last).sum(axis=1) + 0.5 * ((win == last).sum(axis=1) - 1)) / 19
    np.testing.assert_array_equal(whole, np.r_[[np.nan] * 19, ref])
    np.testing.assert_array_equal(vo.trailing_percentile(v[:250], 20), whole[:250])


def test_session_vwap_resets_at_session_start():
    high = np.array([11, 12, 13, 21, 22, 23.0])
    low = np.array([9, 10, 11, 19, 20, 21.0])
    close = np.array([10, 11, 12, 20, 21, 22.0])
    vol = np.array([1, 2, 3, 4, 0, 1.0])
    bars = make_bars(close, high=high, low=low, volume=vol, index=gap_index())
    dist = vo.session_vwap(bars)["vwap_sess_dist"]
    typical = (high + low + close) / 3  # equals close here
    vwap = [typical[0], (10 + 22) / 3, (10 + 22 + 36) / 6, 20.0, 20.0, (80 + 22) / 5]
    np.testing.assert_allclose(dist, (close - vwap) / close)
    zero = vo.session_vwap(make_bars([10, 11], volume=[0, 0]))["vwap_sess_dist"]
    np.testing.assert_array_equal(zero, [0.0, 0.0])


def test_rolling_vwap_and_zero_volume():
    bars = make_bars([10, 12, 14], volume=[1, 3, 0])
    out = vo.rolling_vwap(bars, windows=(2,))["vwap_dist_2"]
    np.testing.assert_allclose(out, [np.nan, (12 - 46 / 4) / 12, (14 - 12) / 14])
    zero = vo.rolling_vwap(make_bars([10, 12], volume=[0, 0]), windows=(2,))["vwap_dist_2"]
    np.testing.assert_array_equal(zero, [np.nan, 0.0])


def test_mfi_against_definition_and_flat_window():
    high = np.array([11, 12, 11, 13, 12, 14.0])
    low = np.array([9, 10, 9, 11, 10, 12.0])
    close = np.array([10, 11, 10, 12, 11, 13.0])
    vol = np.array([100, 200, 150, 300, 250, 100.0])
    out = vo.mfi(make_bars(close, high=high, low=low, volume=vol), periods=(3,))["mfi_3"]
    typical = (high + low + close) / 3
    flow = typical * vol
    expected = [np.nan] * 3
    for t in range(3, 6):
        up = sum(flow[i] for i in range(t - 2, t + 1) if typical[i] > typical[i - 1])
        down = sum(flow[i] for i in range(t - 2, t + 1) if typical[i] < typical[i - 1])
        expected.append(up / (up + down) - 0.5)
    np.testing.assert_allclose(out, expected)
    flat = vo.mfi(make_bars(np.full(6, 10.0)), periods=(3,))["mfi_3"]
    np.testing.assert_array_equal(flat[3:], 0.0)


def test_volume_ratio_values():
    out = vo.volume_ratio(make_bars(np.ones(4), volume=[1, 2, 3, 4]), pairs=((1, 2), (2, 4)))
    np.testing.assert_allclose(out["vratio_1_2"], [np.nan, np.log(2 / 1.5), np.log(3 / 2.5),
                                                   np.log(4 / 3.5)])
    np.testing.assert_allclose(out["vratio_2_4"], [np.nan] * 3 + [np.log(3.5 / 2.5)])
    zero = vo.volume_ratio(make_bars(np.ones(3), volume=[5, 0, 0]), pairs=((1, 2),))
    np.testing.assert_allclose(zero["vratio_1_2"], [np.nan, np.log(1e-3), 0.0])


def test_volume_columns_do_not_depend_on_the_volume_unit():
    bars = SyntheticSource(days=3, seed=5).load().bars["MES"]
    scaled = bars.copy()
    scaled["volume"] *= 1000.0
    for fn in (vo.obv, vo.volume_percentile, vo.session_vwap, vo.rolling_vwap, vo.mfi,
               vo.volume_ratio, ms.kyle_lambda):
        a, b = fn(bars), fn(scaled)
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, err_msg=key)


# --- microstructure ---------------------------------------------------------------------

def test_amihud_masks_session_gap_returns():
    close = np.array([100, 101, 99, 120, 121.0])
    vol = np.array([10, 20, 0, 40, 50.0])
    idx = gap_index()[[0, 1, 2, 3, 4]]  # bar 3 opens a session: its return is masked
    out = ms.amihud(make_bars(close, volume=vol, index=idx), windows=(2,))["amihud_2"]
    r = np.abs(np.diff(np.log(close)))
    illiq = [r[0] / (101 * 20), 0.0, 0.0, r[3] / (121 * 50)]  # zero volume contributes 0
    expected = [np.nan, np.nan] + [np.log((illiq[i] + illiq[i + 1]) / 2 + 1e-15)
                                   for i in range(3)]
    np.testing.assert_allclose(out, expected)


def test_roll_spread_on_bid_ask_bounce_and_trend():
    s = 0.002
    bounce = make_bars(100 * np.exp(np.tile([0.0, s], 5)))
    out = ms.roll_spread(bounce, windows=(4,))["roll_4"]
    # pairs (dr_t, dr_{t-1}) = (x, -x) with x = +-s alternating: cov = -var(x) = -4 s^2 / 3
    assert np.isnan(out[:5]).all()
    np.testing.assert_allclose(out[5:], 2 * np.sqrt(4 * s * s / 3), rtol=1e-9)
    trend = make_bars(100 * np.exp(np.cumsum(np.arange(1, 11) * 1e-3)))
    np.testing.assert_array_equal(ms.roll_spread(trend, windows=(4,))["roll_4"][5:], 0.0)


def test_kyle_lambda_recovers_the_impact_slope():
    vol = np.array([100, 300, 200, 400, 100, 500, 300.0])
    sign = np.array([0, 1, -1, 1, 1, -1, -1.0])
    lam = 2e-6
    close = 100 * np.exp(np.cumsum(lam * sign * vol))
    out = ms.kyle_lambda(make_bars(close, volume=vol), windows=(4,))["kyle_4"]
    expected = [np.nan] * 4 + [lam * vol[t - 3:t + 1].mean() for t in range(4, 7)]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    flat = ms.kyle_lambda(make_bars(np.full(6, 100.0)), windows=(3,))["kyle_3"]
    np.testing.assert_array_equal(flat[3:], 0.0)


def _cs(h0, l0, h1, l1):
    k = 3 - 2 * math.sqrt(2)
    beta = math.log(h1 / l1) ** 2 + math.log(h0 / l0) ** 2
    gamma = math.log(max(h0, h1) / min(l0, l1)) ** 2
    alpha = (math.sqrt(2 * beta) - math.sqrt(beta)) / k - math.sqrt(gamma / k)
    return max(2 * (math.exp(alpha) - 1) / (1 + math.exp(alpha)), 0.0)


def test_corwin_schultz_three_bars_against_the_formula():
    high = np.array([101.0, 101.1, 103.0])
    low = np.array([100.0, 100.1, 102.0])  # bar 2 lies wholly above the close of bar 1
    close = np.array([100.5, 100.2, 102.5])
    spread = ms.corwin_schultz_spread(high, low, close)
    s1 = _cs(101.0, 100.0, 101.1, 100.1)
    s2 = _cs(101.1, 100.1, 103.0 - 1.8, 102.0 - 1.8)  # shifted down by low - prev close
    assert s1 > 0 and s2 > 0
    np.testing.assert_allclose(spread, [np.nan, s1, s2])
    out = ms.corwin_schultz(make_bars(close, high=high, low=low), windows=(2,))["cs_2"]
    np.testing.assert_allclose(out, [np.nan, np.nan, (s1 + s2) / 2])
    # a big move between bars: negative estimate set to 0
    assert ms.corwin_schultz_spread(np.array([101, 111.0]), np.array([100, 110.0]),
                                    np.array([100.5, 110.5]))[1] == 0.0


# --- wavelet ----------------------------------------------------------------------------

def test_haar_energy_known_windows():
    const = wv.haar_energy_shares(np.full(8, 0.01), 8)[:, 7]
    np.testing.assert_allclose(const, [0, 0, 0, 1.0])  # all in the approximation
    alt = wv.haar_energy_shares(np.tile([1.0, -1.0], 5), 8)
    for t in (7, 8, 9):  # windows starting with +1 or with -1: all energy in level 1
        np.testing.assert_allclose(alt[:, t], [1.0, 0, 0, 0])
    step = wv.haar_energy_shares(np.array([1.0, 1, -1, -1]), 4)[:, 3]
    np.testing.assert_allclose(step, [0, 1.0, 0])  # a two-bar block pattern: level 2
    zero = wv.haar_energy_shares(np.zeros(4), 4)[:, 3]
    np.testing.assert_array_equal(zero, [0, 0, 0])
    assert np.isnan(wv.haar_energy_shares(np.ones(8), 4)[:, :3]).all()


def test_trailing_haar_equals_the_window_matrix_transform():
    r = np.random.default_rng(1).normal(size=600)
    for w in (2, 16, 64):
        fast = wv.trailing_haar_energies(r, w)[:, w - 1:].T
        ref = wv.haar_energies(sliding_window_view(r, w))
        np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ref.sum(axis=1), (sliding_window_view(r, w) ** 2).sum(1))


def test_haar_group_columns_and_window_check():
    bars = make_bars(100 * np.exp(np.cumsum(np.tile([1e-3, -1e-3], 40))))
    out = wv.haar_energy(bars, windows=(8,))
    assert list(out) == ["haar8_d1", "haar8_d2", "haar8_d3", "haar8_a"]
    np.testing.assert_allclose(out["haar8_d1"][8:], 1.0)
    with pytest.raises(ValueError, match="power of two"):
        wv.haar_energy(bars, windows=(12,))


# --- fracdiff ---------------------------------------------------------------------------

def test_fracdiff_weights():
    np.testing.assert_allclose(fd.fracdiff_weights(0.5, window=5, threshold=0),
                               [1, -0.5, -0.125, -0.0625, -0.0390625])
    np.testing.assert_array_equal(fd.fracdiff_weights(1.0), [1.0, -1.0])
    np.testing.assert_array_equal(fd.fracdiff_weights(0.0), [1.0])
    assert fd.fracdiff_weights(0.5, window=100, threshold=0.01).size == 10  # |w_10| < 0.01
    assert fd.fracdiff_weights(0.4).size == 100


def test_fracdiff_series_definition_and_integer_orders():
    close = 100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, 300)))
    logc = np.log(close)
    bars = make_bars(close)
    np.testing.assert_allclose(fd.fracdiff(bars, d=1.0)["ffd_d1_w100"][1:], np.diff(logc))
    np.testing.assert_allclose(fd.fracdiff(bars, d=0.0)["ffd_d0_w100"], logc)
    w = fd.fracdiff_weights(0.4, window=20)
    out = fd.fracdiff(bars, d=0.4, window=20)["ffd_d0p4_w20"]
    direct = [sum(w[k] * logc[t - k] for k in range(20)) for t in range(19, 300)]
    assert np.isnan(out[:19]).all()
    np.testing.assert_allclose(out[19:], direct, rtol=1e-12)


def test_adf_and_choose_d():
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 0.01, 4000)
    walk = np.cumsum(noise)
    assert fd.adf_tstat(noise)[0] < -20
    assert fd.adf_tstat(walk)[0] > fd.mackinnon_critical_value(4000)
    assert fd.mackinnon_critical_value(10**9) == pytest.approx(-2.86154)
    assert fd.mackinnon_critical_value(100) == pytest.approx(-2.8904, abs=1e-3)
    with pytest.raises(ValueError, match="pvalue"):
        fd.mackinnon_critical_value(100, 0.07)
    d_walk = fd.choose_d(np.log(100) + walk)
    assert 0 < d_walk <= 1.0
    assert fd.choose_d(np.log(100) + noise) == 0.0
    assert fd.choose_d(np.log(100) + noise, d_grid=(0.3, 0.6)) == 0.3
    assert fd.choose_d(np.log(100) + walk, d_grid=(0.0,)) == 0.0  # none passes: max of grid


# --- the catalog as a whole -------------------------------------------------------------

@pytest.fixture(scope="module")
def long_bars() -> pd.DataFrame:
    return SyntheticSource(days=10, seed=11).load().bars["MGC"]


@pytest.mark.parametrize("group", sorted(MINE))
def test_exact_warmup_and_column_count(long_bars, group):
    spec = catalog()[group]
    out = spec.fn(long_bars)
    assert len(out) == MINE[group]
    frame = np.column_stack(list(out.values()))
    assert frame.dtype == np.float64 and frame.shape[0] == len(long_bars)
    warm = spec.warmup_bars({})
    finite = np.isfinite(frame).all(axis=1)
    assert finite[warm:].all()
    if warm > 0:
        assert not finite[warm - 1]


@pytest.mark.parametrize(("group", "params"), [
    ("obv", {"windows": (7,)}), ("volume_percentile", {"windows": (9,)}),
    ("rolling_vwap", {"windows": (13,)}), ("mfi", {"periods": (5,)}),
    ("volume_ratio", {"pairs": ((2, 11),)}), ("amihud", {"windows": (6,)}),
    ("roll_spread", {"windows": (6,)}), ("kyle_lambda", {"windows": (6,)}),
    ("corwin_schultz", {"windows": (6,)}), ("haar_energy", {"windows": (4, 32)}),
    ("ibs", {"windows": (3,)}), ("fracdiff", {"d": 0.7, "window": 30}),
    ("fracdiff", {"d": 0.3, "window": 500, "threshold": 1e-3}),
])
def test_exact_warmup_with_other_params(long_bars, group, params):
    spec = catalog()[group]
    finite = np.isfinite(np.column_stack(list(spec.fn(long_bars, **params).values()))).all(1)
    warm = spec.warmup_bars(params)
    assert finite[warm:].all() and not finite[warm - 1]


def test_column_names_unique_across_the_catalog(long_bars):
    seen: dict[str, str] = {}
    for name, spec in catalog().items():
        for col in spec.fn(long_bars.iloc[:300]):
            assert col not in seen, f"{col} from {name} also from {seen.get(col)}"
            seen[col] = name
    assert sum(MINE.values()) == 42
