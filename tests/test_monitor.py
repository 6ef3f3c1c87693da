"""Monitoring: planted drift is caught where it is and nowhere else; calibration and the
retraining triggers by hand; the prediction log's outcomes are the labels themselves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import talib

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.labeling.triple_barrier import triple_barrier
from factory.monitoring import Monitor, PredictionLog, ReferenceProfile, run_check
from factory.monitoring.calibration import brier, ece, reliability
from factory.monitoring.reference import bin_shares, decile_edges, psi

TF = pd.Timedelta("5min")
MES = Instrument("MES", tick_size=0.25, point_value=5.0, commission=0.62, slippage_ticks=1)


def _bars(n: int, sigma: float, seed: int, start: str, volume_scale: float = 1.0):
    rng = np.random.default_rng(seed)
    close = 4800 * np.exp(np.cumsum(rng.standard_t(5, n) * sigma))
    open_ = np.r_[4800.0, close[:-1]]
    wick = np.abs(rng.normal(0, sigma, (2, n))) * close
    idx = pd.date_range(start, periods=n, freq=TF, tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wick[0],
                         "low": np.minimum(open_, close) - wick[1], "close": close,
                         "volume": rng.lognormal(5, 0.5, n) * volume_scale}, index=idx)


def _features(b: pd.DataFrame) -> pd.DataFrame:
    h, lo, c, v = (b[k].to_numpy() for k in ("high", "low", "close", "volume"))
    vol = pd.Series(v)
    f = pd.DataFrame({
        "natr_14": talib.NATR(h, lo, c, 14),                 # volatility: shifts
        "abs_ret": np.abs(np.r_[np.nan, np.diff(np.log(c))]),  # volatility: shifts
        "rsi_14": talib.RSI(c, 14),                          # scale-free: stable
        "hour": b.index.hour.to_numpy(np.float64),           # calendar: stable
        "volume": v,                                         # units change: shifts
        "volume_z": ((vol - vol.rolling(50).mean()) / vol.rolling(50).std()).to_numpy(),
    }, index=b.index)
    return f.iloc[60:]


def _proba(f: pd.DataFrame) -> np.ndarray:
    z = (f["rsi_14"].to_numpy() - 50) / 10
    logits = np.c_[-z, np.zeros(len(z)), z]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _log(f: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    log = PredictionLog()
    frame = pd.DataFrame({"timestamp": f.index, "symbol": "MES", "p_short": p[:, 0],
                          "p_flat": p[:, 1], "p_long": p[:, 2], "side": 0, "qty": 0.0,
                          "width_up": 5.0, "width_dn": 5.0, "horizon": 10})
    log.extend(frame, f.reset_index(drop=True), model="test")
    return log.frame()


@pytest.fixture(scope="module")
def profile():
    train = _features(_bars(4000, 0.001, seed=1, start="2024-01-01"))
    return ReferenceProfile.fit(train, _proba(train), validation={"accuracy": 0.5},
                                trained_through=train.index[-1])


def test_planted_shifts_alert_on_the_shifted_features_only(profile, tmp_path):
    live = _features(_bars(2000, 0.002, seed=2, start="2024-01-15", volume_scale=100.0))
    report = Monitor().check(profile, _log(live, _proba(live)))
    assert sorted(report.drifted) == ["abs_ret", "natr_14", "volume"]
    calm = report.psi[~report.psi["column"].isin(report.drifted)]
    assert set(calm["column"]) == {"rsi_14", "hour", "volume_z", "p_short", "p_flat", "p_long"}
    assert (calm["psi"] < 0.1).all(), calm
    assert report.exit_code == 2
    drift = [r for r in report.recommendations if r["trigger"] == "drift"]
    assert drift[0]["severity"] == 2 and "natr_14" in drift[0]["reason"]
    files = report.write(tmp_path)
    assert {"monitor_report.md", "monitor.json", "psi.png"} <= set(files)
    md = (tmp_path / "monitor_report.md").read_text()
    assert "ALERT (exit code 2)" in md and "| volume | feature |" in md
    assert json.loads((tmp_path / "monitor.json").read_text())["exit_code"] == 2


def test_no_shift_is_healthy(profile):
    same = _features(_bars(2000, 0.001, seed=3, start="2024-01-15"))
    report = Monitor().check(profile, _log(same, _proba(same)))
    assert report.exit_code == 0 and report.drifted == [] and report.recommendations == []
    assert (report.psi["psi"] < 0.1).all()
    assert any("resolved rows" in n for n in report.notes)  # no outcomes yet: said, not hidden


def test_psi_by_hand():
    edges = decile_edges(np.arange(100.0))
    assert len(edges) == 9
    e = bin_shares(np.arange(100.0), edges)
    np.testing.assert_allclose(e, [0.1] * 10 + [0.0])  # ten deciles and an empty NaN bin
    a = bin_shares(np.r_[np.arange(50.0), [np.nan] * 50], edges)
    np.testing.assert_allclose(a[:5], 0.1)
    assert a[-1] == 0.5
    expected = 5 * (1e-4 - 0.1) * np.log(1e-4 / 0.1) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    assert psi(e, a) == pytest.approx(expected)


def test_calibration_by_hand():
    p = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.05, 0.15, 0.8]])
    y = np.array([1, 0, 0, -1])  # right, wrong, right, wrong
    t = reliability(p, y, n_bins=10)
    assert t["bin"].tolist() == ["0.5-0.6", "0.6-0.7", "0.7-0.8", "0.8-0.9"]
    assert t["accuracy"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert ece(t) == pytest.approx((0.5 + 0.6 + 0.3 + 0.8) / 4)
    b = [(0.01 + 0.04 + 0.09), (0.36 + 0.49 + 0.01), (0.04 + 0.25 + 0.09), (0.9025 + 0.0225 + 0.64)]
    assert brier(p, y) == pytest.approx(np.mean(b))


def _resolved(n, accuracy, seed, start="2024-02-01"):
    """Rows whose outcome equals the predicted class with the given frequency."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([2, 2, 2], n)
    pred = p.argmax(axis=1) - 1
    right = rng.random(n) < accuracy
    other = (pred + rng.integers(1, 3, n) + 1) % 3 - 1
    idx = pd.date_range(start, periods=n, freq=TF, tz="UTC")
    return pd.DataFrame({"timestamp": idx, "symbol": "MES", "p_short": p[:, 0],
                         "p_flat": p[:, 1], "p_long": p[:, 2], "side": pred, "qty": 1.0,
                         "outcome": np.where(right, pred, other).astype(float),
                         "ret_long": 0.001 * np.where(right, pred, -pred), "cost": 0.0001,
                         "ret_short": -0.001 * np.where(right, pred, -pred)})


def test_accuracy_drop_and_calendar_triggers():
    ref = ReferenceProfile({}, {}, validation={"accuracy": 0.60, "trade_sharpe": 0.15},
                           trained_through="2024-01-01 00:00:00+00:00")
    mon = Monitor(window=500, retrain_every_days=30)
    good = mon.check(ref, _resolved(800, 0.60, seed=1))
    assert not any(r["trigger"] == "accuracy" for r in good.recommendations)
    assert good.live["accuracy"] == pytest.approx(0.6, abs=0.05)
    assert [r["trigger"] for r in good.recommendations] == ["calendar"]  # Feb vs Jan 1st
    assert good.exit_code == 1
    bad = mon.check(ref, _resolved(800, 0.42, seed=2))
    acc = [r for r in bad.recommendations if r["trigger"] == "accuracy"]
    assert acc and acc[0]["severity"] == 2 and "below validation (0.600)" in acc[0]["reason"]
    assert any(r["trigger"] == "sharpe" for r in bad.recommendations)
    assert bad.exit_code == 2


def test_prediction_log_resolves_outcomes_with_the_label_kernel(tmp_path):
    b = _bars(400, 0.002, seed=5, start="2024-03-04")
    log = PredictionLog()
    decisions = [10, 50, 120, 300, 395]  # the last one's horizon is not over yet
    for i in decisions:
        log.record(b.index[i], "MES", (0.2, 0.3, 0.5), side=1, qty=2, width_up=6.0,
                   width_dn=4.0, horizon=10, features={"natr_14": 0.1 * i, "rsi_14": 50.0},
                   model="v1")
    assert log.resolve({"MES": b}, {"MES": MES}) == 4
    path = log.write(tmp_path / "predictions_log.parquet")
    f = PredictionLog.read(path).frame()
    ref = triple_barrier(*(b[k].to_numpy() for k in ("open", "high", "low", "close")),
                         np.full(len(b), 6.0), np.full(len(b), 4.0), 10,
                         MES.round_trip_cost_points)
    got = f["outcome"].to_numpy()
    np.testing.assert_array_equal(got[:4], ref["label"][decisions[:4]])
    np.testing.assert_array_equal(f["ret_long"].to_numpy()[:4], ref["ret_long"][decisions[:4]])
    assert np.isnan(got[4]) and pd.isna(f["resolved_at"].iloc[4])
    assert (f["resolved_at"].iloc[:4] == b.index[ref["exit_idx"][decisions[:4]]]).all()
    assert f["feat_natr_14"].dtype == np.float32 and f["inputs_hash"].str.len().eq(16).all()
    assert f["model"].eq("v1").all() and f["n_missing"].eq(0).all()


def test_run_check_and_bad_inputs(profile, tmp_path):
    live = _features(_bars(600, 0.002, seed=7, start="2024-01-15", volume_scale=100.0))
    log = PredictionLog(_log(live, _proba(live)))
    log.write(tmp_path / "log.parquet")
    profile.save(tmp_path / "reference.json")
    code = run_check(Monitor(), tmp_path / "reference.json", tmp_path / "log.parquet",
                     tmp_path / "out")
    assert code == 2 and (tmp_path / "out" / "monitor_report.md").is_file()
    with pytest.raises(FactoryError, match="not found"):
        ReferenceProfile.load(tmp_path / "missing.json")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(FactoryError, match="is not a prediction log"):
        PredictionLog.read(tmp_path / "bad.parquet")
    with pytest.raises(FactoryError, match="psi_warn"):
        Monitor(psi_warn=0.3, psi_alert=0.2)


def test_monitor_config_composes(make_cfg):
    from factory.config import build

    mon = build(make_cfg("+monitor=default").monitor)
    assert isinstance(mon, Monitor) and (mon.psi_warn, mon.psi_alert) == (0.1, 0.2)
