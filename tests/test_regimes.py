"""Regime features: HMM fitted on training bars only, forward-filtered, states in a fixed order.

The leak this guards against: an HMM fitted on the whole series whose state probabilities
come from forward-backward smoothing (both use the future). Here the fit sees training bars
only, probabilities are forward-filtered (row t uses bars <= t), and state 0 is always the
calmest. The volatility and trend regime groups are checked for the same causality.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from factory.data.synthetic import SyntheticSource
from factory.errors import FactoryError
from factory.features.catalog.regime import trend_regime, volatility_regime
from factory.features.hmm_filter import forward_filter, forward_filter_numpy
from factory.features.regimes import HMMRegimes
from factory.features.registry import catalog

_GROUPS = {n: catalog()[n] for n in ("volatility_regime", "trend_regime")}
REGISTRY = {n: g.fn for n, g in _GROUPS.items()}


def _warmup_of(group):
    return lambda **params: group.warmup_bars(params)


WARMUP = {n: _warmup_of(g) for n, g in _GROUPS.items()}

CUTS = [150, 777, 1500, 2001]
REGIME_PARAMS = {"volatility_regime": {"window": 20, "lookback": 300},
                 "trend_regime": {"window": 50}}


def _frame(bars_close: np.ndarray, freq: str = "5min") -> pd.DataFrame:
    """Bars whose OHLC all equal ``close`` (the regime features read close only)."""
    idx = pd.date_range("2024-01-02", periods=len(bars_close), freq=freq, tz="UTC",
                        name="timestamp")
    c = np.asarray(bars_close, dtype=np.float64)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c,
                         "volume": np.ones_like(c)}, index=idx)


def _two_regime_bars(n: int = 4000, block: int = 250, seed: int = 0):
    """Alternating calm / volatile blocks of Gaussian 1-bar log returns (vol 0.08% / 0.3%)."""
    rng = np.random.default_rng(seed)
    regime = (np.arange(n) // block) % 2
    r = rng.standard_normal(n) * np.where(regime == 1, 0.003, 0.0008)
    return _frame(4000.0 * np.exp(np.cumsum(r))), regime


def _probs(cols: dict) -> np.ndarray:
    k = sum(1 for c in cols if c.startswith("hmm_p"))
    return np.column_stack([cols[f"hmm_p{i}"] for i in range(k)] + [cols["hmm_state"]])


def _stack(cols: dict) -> np.ndarray:
    return np.column_stack([cols[c] for c in sorted(cols)])


def _spiked(bars: pd.DataFrame, t: int) -> pd.DataFrame:
    out = bars.copy()
    out.iloc[t + 1 :, :4] *= 50.0  # a 50x price spike from t+1 on (as tests/test_lookahead.py)
    out.iloc[t + 1 :, 4] *= 1000.0
    return out


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return SyntheticSource(days=14, seed=3).load().bars["MES"].iloc[:2500]


@pytest.fixture(scope="module")
def train_mask(bars) -> np.ndarray:
    mask = np.zeros(len(bars), bool)
    mask[:1750] = True
    return mask


@pytest.fixture(scope="module")
def hmm(bars, train_mask) -> HMMRegimes:
    return HMMRegimes().fit(bars, train_mask)


@pytest.fixture(scope="module")
def two_regimes():
    bars, regime = _two_regime_bars()
    return bars, regime, np.ones(len(bars), bool)


# --------------------------------------------------------------------------------------
# (a) deterministic state order, by volatility
# --------------------------------------------------------------------------------------
def test_state_zero_is_the_calm_regime(two_regimes):
    bars, regime, mask = two_regimes
    h = HMMRegimes(n_states=2).fit(bars, mask)
    p = h.params_
    j = h.observations.index("logvol_20")
    assert p["means"][0, j] < p["means"][1, j]  # calm state first: lower vol level ...
    assert p["covars"][0, 0, 0] < p["covars"][1, 0, 0]  # ... and lower return variance
    state = h.transform(bars)["hmm_state"]
    assert np.mean(state[h.warmup :] == regime[h.warmup :]) > 0.9  # recovers the regimes


def test_state_order_does_not_depend_on_random_state(two_regimes):
    bars, _, mask = two_regimes
    fits = [HMMRegimes(n_states=2, init="kmeans", random_state=s).fit(bars, mask)
            for s in range(6)]
    # the raw EM labels do flip between seeds (so the reordering is exercised) ...
    assert len({tuple(f.fit_info_["order"]) for f in fits}) == 2
    # ... the ordered states do not
    for f in fits[1:]:
        for key in ("means", "covars", "transmat"):
            np.testing.assert_allclose(f.params_[key], fits[0].params_[key], atol=1e-4)
    # the default start (volatility quantiles) is deterministic: random_state plays no role
    a = HMMRegimes(n_states=2, random_state=1).fit(bars, mask).get_state()["params"]
    b = HMMRegimes(n_states=2, random_state=99).fit(bars, mask).get_state()["params"]
    assert a == b


def test_three_states_sorted_on_real_bars(hmm):
    j = hmm.observations.index("logvol_20")
    assert np.all(np.diff(hmm.params_["means"][:, j]) > 0)
    np.testing.assert_allclose(hmm.params_["transmat"].sum(axis=1), 1.0, atol=1e-12)
    assert (hmm.params_["transmat"] > 0.99e-12).all()  # floored: no impossible transition


# --------------------------------------------------------------------------------------
# (b) the forward filter: brute force agrees, hmmlearn's smoother does not
# --------------------------------------------------------------------------------------
def _brute_force_filter(log_b: np.ndarray, pi: np.ndarray, A: np.ndarray) -> np.ndarray:
    """P(s_t | o_0..t) by enumerating every state path of length t+1."""
    T, K = log_b.shape
    out = np.empty((T, K))
    for t in range(T):
        mass = np.zeros(K)
        for path in itertools.product(range(K), repeat=t + 1):
            lp = np.log(pi[path[0]]) + log_b[0, path[0]]
            for s in range(1, t + 1):
                lp += np.log(A[path[s - 1], path[s]]) + log_b[s, path[s]]
            mass[path[-1]] += np.exp(lp)
        out[t] = mass / mass.sum()
    return out


def _naive_filter(log_b: np.ndarray, pi: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Unnormalised forward variables in log space, normalised at the end of each step."""
    la = [np.log(pi) + log_b[0]]
    for t in range(1, len(log_b)):
        la.append(logsumexp(la[-1][:, None] + np.log(A), axis=0) + log_b[t])
    la = np.array(la)
    return np.exp(la - logsumexp(la, axis=1, keepdims=True))


def _scipy_log_b(h: HMMRegimes, x: np.ndarray) -> np.ndarray:
    p = h.params_
    return np.column_stack([multivariate_normal(p["means"][k], p["covars"][k]).logpdf(x)
                            for k in range(h.n_states)])


def test_filter_matches_brute_force_on_a_tiny_model(two_regimes):
    bars, _, mask = two_regimes
    h = HMMRegimes(n_states=2).fit(bars, mask)
    p = h.params_
    w, T = h.warmup, 11
    window = bars.iloc[1000 : 1000 + w + T]  # straddles a calm -> volatile switch
    got = _probs(h.transform(window))
    assert np.isnan(got[:w]).all()
    log_b = _scipy_log_b(h, h.observe(window)[w:])
    ref = _brute_force_filter(log_b, p["startprob"], p["transmat"])
    np.testing.assert_allclose(got[w:, :2], ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got[w:, 2], ref.argmax(axis=1))


def test_filter_matches_naive_recursion_on_all_bars(hmm, bars):
    w = hmm.warmup
    x = hmm.observe(bars)[w:]
    ref = _naive_filter(_scipy_log_b(hmm, x), hmm.params_["startprob"], hmm.params_["transmat"])
    got = _probs(hmm.transform(bars))
    np.testing.assert_allclose(got[w:, :3], ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("block", [1, 3, 64, 512])
def test_blocked_filter_any_block_size(block):
    rng = np.random.default_rng(5)
    A = rng.random((3, 3)) + 0.05
    A /= A.sum(axis=1, keepdims=True)
    pi = np.array([0.2, 0.5, 0.3])
    log_b = rng.standard_normal((1300, 3)) * 6.0  # sharp, often conflicting evidence
    got = forward_filter(log_b, pi, A, block=block)
    np.testing.assert_allclose(got, _naive_filter(log_b, pi, A), rtol=0, atol=1e-12)
    # the compiled passes repeat the numpy reference's operations: bit for bit
    np.testing.assert_array_equal(got, forward_filter_numpy(log_b, pi, A, block=block))
    for t in (0, 1, block - 1, block, block + 1, 777, 1299):  # any prefix: bit-identical
        if t < len(log_b):
            np.testing.assert_array_equal(forward_filter(log_b[: t + 1], pi, A, block=block),
                                          got[: t + 1])


def test_filtered_is_not_hmmlearns_smoothed(two_regimes):
    bars, _, mask = two_regimes
    h = HMMRegimes(n_states=2).fit(bars, mask)
    p, w = h.params_, h.warmup
    ref = GaussianHMM(n_components=2, covariance_type="full")
    ref.startprob_, ref.transmat_ = p["startprob"], p["transmat"]
    ref.means_, ref.covars_ = p["means"], p["covars"]
    x = h.observe(bars)[w:]
    smoothed = ref.predict_proba(x)  # forward-backward: row t uses every row
    filtered = _probs(h.transform(bars))[w:, :2]
    assert np.abs(filtered - smoothed).max() > 0.5  # smoothing knows the switch in advance
    assert np.sum(np.abs(filtered - smoothed).max(axis=1) > 1e-3) >= 10  # around each switch
    np.testing.assert_allclose(filtered[-1], smoothed[-1], atol=1e-9)  # equal at the last bar


# --------------------------------------------------------------------------------------
# (c) lookahead invariance and (e) spikes, with the model fitted once
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", CUTS)
def test_hmm_lookahead_invariance(hmm, bars, t):
    full = _probs(hmm.transform(bars))
    cut = _probs(hmm.transform(bars.iloc[: t + 1]))
    np.testing.assert_array_equal(cut, full[: t + 1])
    assert np.isnan(full[: hmm.warmup]).all() and np.isfinite(full[hmm.warmup :]).all()


@pytest.mark.parametrize("t", CUTS)
def test_spike_after_t_changes_no_regime_feature_up_to_t(hmm, bars, t):
    spiked = _spiked(bars, t)
    before, after = _probs(hmm.transform(bars)), _probs(hmm.transform(spiked))
    np.testing.assert_array_equal(after[: t + 1], before[: t + 1])
    assert not np.allclose(after[t + 1 :], before[t + 1 :])  # the spike is seen after t
    for name, fn in REGISTRY.items():
        b = _stack(fn(bars, **REGIME_PARAMS[name]))
        a = _stack(fn(spiked, **REGIME_PARAMS[name]))
        np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
        assert not np.allclose(a[t + 1 :], b[t + 1 :], equal_nan=True)


# --------------------------------------------------------------------------------------
# (d) the fit reads training bars only
# --------------------------------------------------------------------------------------
def test_fit_uses_training_bars_only(bars):
    mask = np.zeros(len(bars), bool)
    mask[100:1200] = True
    mask[1400:2200] = True  # two training runs, each its own sequence
    base = HMMRegimes().fit(bars, mask)
    changed = bars.copy()
    changed.iloc[~mask] = changed.iloc[~mask] * 10.0  # every bar outside the mask, x10
    other = HMMRegimes().fit(changed, mask)
    assert base.fit_info_["sequences"] == 2
    assert other.get_state() == base.get_state()  # bit-identical fitted parameters
    inside = bars.copy()
    inside.iloc[500:520, :4] *= 1.05  # a change inside the mask does move the fit
    assert HMMRegimes().fit(inside, mask).get_state()["params"] != base.get_state()["params"]


def test_fit_subsamples_contiguous_windows(bars, train_mask):
    full = HMMRegimes().fit(bars, train_mask)
    sub = HMMRegimes(max_fit_rows=600, fit_chunks=3).fit(bars, train_mask)
    assert sub.fit_info_["fit_rows"] == 600 and sub.fit_info_["sequences"] == 3
    np.testing.assert_array_equal(sub.params_["obs_mean"], full.params_["obs_mean"])
    j = sub.observations.index("logvol_20")
    assert np.all(np.diff(sub.params_["means"][:, j]) > 0)


def test_bad_fit_input_is_a_clear_error(bars):
    with pytest.raises(FactoryError, match="boolean array"):
        HMMRegimes().fit(bars, np.ones(len(bars)))
    with pytest.raises(FactoryError, match="training rows"):
        HMMRegimes().fit(bars, np.arange(len(bars)) < 40)
    with pytest.raises(FactoryError, match="unknown HMM observation"):
        HMMRegimes(observations=["rsi_14"])
    with pytest.raises(FactoryError, match="before fit"):
        HMMRegimes().transform(bars)


# --------------------------------------------------------------------------------------
# (f) JSON state round trip
# --------------------------------------------------------------------------------------
def test_state_round_trip_gives_identical_transform(hmm, bars):
    text = json.dumps(hmm.get_state())
    restored = HMMRegimes.from_state(json.loads(text))
    a, b = hmm.transform(bars), restored.transform(bars)
    assert list(a) == list(b) == hmm.columns
    for col in a:
        np.testing.assert_array_equal(a[col], b[col])
    assert restored.get_state() == hmm.get_state()
    with pytest.raises(FactoryError, match="HMMRegimes state"):
        HMMRegimes.from_state({"kind": "something else"})


# --------------------------------------------------------------------------------------
# (g) volatility and trend regimes: causal, known values, warm-up
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("t", CUTS)
def test_regime_groups_lookahead_invariance(bars, name, t):
    params = REGIME_PARAMS[name]
    full = _stack(REGISTRY[name](bars, **params))
    cut = _stack(REGISTRY[name](bars.iloc[: t + 1], **params))
    np.testing.assert_array_equal(cut, full[: t + 1])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_regime_groups_warmup_is_exact(bars, name):
    params = REGIME_PARAMS[name]
    frame = _stack(REGISTRY[name](bars, **params))
    warm = WARMUP[name](**params)
    defined = np.isfinite(frame).all(axis=1)
    assert not defined[:warm].any() and defined[warm:].all()


def test_trend_regime_known_values():
    t = np.arange(300, dtype=np.float64)
    up = trend_regime(_frame(100.0 * np.exp(0.001 * t)), window=20)
    assert np.isnan(up["trend_z_20"][:19]).all()
    np.testing.assert_array_equal(up["trend_z_20"][19:], 10.0)  # noiseless line: clipped
    np.testing.assert_allclose(up["trend_r2_20"][19:], 1.0, atol=1e-9)
    np.testing.assert_array_equal(up["trend_regime_20"][19:], 1.0)
    down = trend_regime(_frame(100.0 * np.exp(-0.001 * t)), window=20)
    np.testing.assert_array_equal(down["trend_z_20"][19:], -10.0)
    np.testing.assert_array_equal(down["trend_regime_20"][19:], -1.0)
    flat = trend_regime(_frame(np.full(300, 100.0)), window=20)
    np.testing.assert_array_equal(flat["trend_z_20"][19:], 0.0)
    np.testing.assert_array_equal(flat["trend_r2_20"][19:], 0.0)
    np.testing.assert_array_equal(flat["trend_regime_20"][19:], 0.0)


def test_trend_regime_matches_a_line_fit():
    rng = np.random.default_rng(2)
    y = np.log(3000.0) + np.cumsum(rng.standard_normal(600) * 0.002 + 0.0004)
    w = 30
    out = trend_regime(_frame(np.exp(y)), window=w, threshold=0.8)
    for t in (w - 1, 100, 377, 599):
        win = y[t - w + 1 : t + 1]
        slope, _ = np.polyfit(np.arange(w), win, 1)
        z = slope * (w - 1) / (np.std(np.diff(win), ddof=1) * np.sqrt(w - 1))
        r2 = np.corrcoef(np.arange(w), win)[0, 1] ** 2
        np.testing.assert_allclose(out[f"trend_z_{w}"][t], z, rtol=1e-9)
        np.testing.assert_allclose(out[f"trend_r2_{w}"][t], r2, rtol=1e-9)
        assert out[f"trend_regime_{w}"][t] == (1.0 if z >= 0.8 else -1.0 if z <= -0.8 else 0.0)


def test_volatility_regime_known_values():
    # alternating-sign 1-bar returns: calm (0.1%), then magnitudes growing 2% a bar, then
    # shrinking 2% a bar. While they grow each vol is a new high (rank 1, regime +1); while
    # they shrink each is a new low (rank 0, regime -1).
    n, w, lb = 500, 10, 50
    mag = np.full(n, 0.001)
    mag[200:300] = 0.001 * 1.02 ** np.arange(1, 101)
    mag[300:] = mag[299] * 0.98 ** np.arange(1, 201)
    r = mag * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    out = volatility_regime(_frame(100.0 * np.exp(np.cumsum(r))), window=w, lookback=lb)
    rank, reg = out[f"vol_rank_{w}_{lb}"], out[f"vol_regime_{w}_{lb}"]
    assert np.isnan(rank[: w + lb - 1]).all() and np.isfinite(rank[w + lb - 1 :]).all()
    np.testing.assert_allclose(rank[205:300], 1.0)
    np.testing.assert_array_equal(reg[205:300], 1.0)
    np.testing.assert_allclose(rank[330:], 0.0)  # once the last 50 vols all lie above
    np.testing.assert_array_equal(reg[330:], -1.0)


def test_volatility_regime_matches_brute_force():
    rng = np.random.default_rng(4)
    r = rng.standard_normal(400) * 0.001 * np.exp(np.sin(np.arange(400) / 30.0))
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    w, lb = 15, 40
    out = volatility_regime(_frame(close), window=w, lookback=lb, low=0.25, high=0.75)
    logret = np.diff(np.log(close))
    vol = np.full(len(close), np.nan)
    for t in range(w, len(close)):
        vol[t] = np.std(logret[t - w : t], ddof=1)  # returns of bars t-w+1..t
    for t in range(w + lb - 1, len(close)):
        past = vol[t - lb + 1 : t + 1]
        rank = (np.sum(past < vol[t]) + (np.sum(past == vol[t]) - 1) / 2.0) / (lb - 1)
        assert out[f"vol_rank_{w}_{lb}"][t] == pytest.approx(rank, abs=1e-12)
        want = -1.0 if rank < 0.25 else 1.0 if rank > 0.75 else 0.0
        assert out[f"vol_regime_{w}_{lb}"][t] == want


def test_regime_group_bad_params():
    bars = _frame(np.full(10, 100.0))
    with pytest.raises(FactoryError, match="window"):
        volatility_regime(bars, window=1)
    with pytest.raises(FactoryError, match="window"):
        trend_regime(bars, window=2)


def test_trend_regime_is_prefix_invariant_on_long_series():
    n = 16_384  # long enough that a blocked or running-sum kernel would show its seams
    rng = np.random.default_rng(6)
    close = 3000.0 * np.exp(np.cumsum(rng.standard_normal(n + 500) * 0.001))
    full = _stack(trend_regime(_frame(close, freq="1min"), window=40))
    for t in (n - 1, n + 38, n + 39, n + 400):
        cut = _stack(trend_regime(_frame(close[: t + 1], freq="1min"), window=40))
        np.testing.assert_array_equal(cut, full[: t + 1])
