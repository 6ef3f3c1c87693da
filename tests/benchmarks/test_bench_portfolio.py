"""Portfolio simulation speed and memory: 8 symbols x 2 years of 5-minute bars.

Run: ``python -m pytest tests/benchmarks/test_bench_portfolio.py -m benchmark -s``.

In a fresh interpreter (so its peak memory is its own, ``VmHWM``): eight correlated
futures-like random walks on a CME-like calendar (504 sessions of 276 five-minute bars each,
1.1M bars in all) with precomputed predictions (class probabilities, a trade signal on about
a bar in five, barrier widths), then

* **reference**: the engine alone on the same bars and predictions (one contract per trade,
  no portfolio), measured in the same run;
* **portfolio**: :func:`factory.portfolio.book.run_book` with ERC from the Ledoit-Wolf
  covariance of hourly returns, a 10% volatility target, daily rebalancing, the correlation
  filter, gross / net / per-instrument limits and the kill switch: the causal estimates
  (timed apart) and the simulation through the engine.

Printed: seconds of each, the portfolio / reference ratio, bars per second, the peak memory
of the process and the size of the bars themselves. Both are timed after a warm-up call (the
numba compile is cached by the engine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.benchmarks.conftest import RESULT_MARK, ROOT, table

pytestmark = pytest.mark.benchmark

SYMBOLS = ["ES", "NQ", "YM", "RTY", "GC", "CL", "6E", "6A"]
LOADINGS = np.array([[0.97, 0, 0], [0.90, 0, 0], [0.93, 0, 0], [0.85, 0, 0],
                     [0.05, 0.35, 0.25], [0.30, 0, 0.55], [0, 0.75, 0], [0.15, 0.60, 0]])
ANNUAL_VOL = np.array([0.16, 0.21, 0.14, 0.22, 0.14, 0.32, 0.07, 0.09])
PRICES = np.array([4800.0, 17000.0, 38000.0, 2000.0, 2050.0, 75.0, 1.09, 0.67])
TF = pd.Timedelta("5min")
SESSIONS, PER_SESSION = 504, 276


def universe(seed: int = 0):
    """Bars, instruments and decision frames of the eight symbols."""
    from factory.data.bars import Instrument
    from factory.portfolio.sources import Side, Universe

    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2022-01-03", periods=SESSIONS, tz="UTC")
    starts = days - pd.Timedelta("1h")  # 23:00 UTC the evening before
    ns = (starts.as_unit("ns").asi8[:, None] + TF.value * np.arange(PER_SESSION)[None, :]).ravel()
    index = pd.DatetimeIndex(ns.view("M8[ns]"), name="timestamp").tz_localize("UTC")
    n = len(index)
    idio = np.sqrt(1.0 - (LOADINGS ** 2).sum(axis=1))
    shocks = rng.standard_normal((n, 3)) @ LOADINGS.T + rng.standard_normal((n, 8)) * idio
    sigma = ANNUAL_VOL / np.sqrt(252 * PER_SESSION)
    bars, decisions, instruments = {}, {}, {}
    for j, sym in enumerate(SYMBOLS):
        close = PRICES[j] * np.exp(np.cumsum(shocks[:, j] * sigma[j]))
        open_ = np.r_[PRICES[j], close[:-1]]
        wick = np.abs(rng.normal(0, sigma[j] / 2, n))
        bars[sym] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick),
                                  "low": np.minimum(open_, close) * (1 - wick), "close": close,
                                  "volume": 100.0}, index=index)
        p = rng.dirichlet([1.0, 4.0, 1.0], n)
        decisions[sym] = pd.DataFrame({"p_short": p[:, 0], "p_flat": p[:, 1], "p_long": p[:, 2],
                                       "barrier_up": 3 * sigma[j] * np.sqrt(20),
                                       "barrier_dn": 3 * sigma[j] * np.sqrt(20)}, index=index)
        tick = 10 ** np.floor(np.log10(PRICES[j]) - 4)
        instruments[sym] = Instrument(sym, tick, 1e6 / PRICES[j] / 10, 2.0, 1.0)
    period = (index[0], index[-1] + TF)
    return Universe(bars, instruments, TF, 252.0, 1380.0, 20, Side([], decisions), None,
                    period, period)


def _status() -> dict[str, float]:
    """VmRSS / VmHWM of this process, MiB."""
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def child() -> None:
    """Measured in a fresh interpreter; prints one JSON line."""
    from omegaconf import OmegaConf

    from factory.portfolio.book import BookSpec, run_book, simulator

    t0 = time.perf_counter()
    uni = universe()
    build_s = time.perf_counter() - t0
    sim = OmegaConf.load(ROOT / "conf" / "sim" / "default.yaml")
    sim.horizon, sim.threshold, sim.session_minutes, sim.tearsheet = 20, 0.45, 1380.0, None
    spec = BookSpec.from_config({"sizing": "erc", "target_vol": 0.1, "correlation_filter": 0.7,
                                 "covariance": {"bar": "1h", "window": 240, "rebalance": "1D"},
                                 "limits": {"max_weight": 1.0, "gross": 4.0, "net": 2.0,
                                            "max_drawdown": 0.9}})
    engine = simulator(sim, spec, 1e8, 20, 1000)
    plain_sim = sim.copy()
    plain_sim.risk = {"max_drawdown": None, "daily_loss": None, "gross_leverage": None}
    from factory.config import build

    plain = build(plain_sim)
    small = (uni.val[0], uni.val[0] + pd.Timedelta("3D"))
    run_book(uni, uni.model.decisions, spec, engine, small)  # warm-up: compile, imports
    bars = uni.bars
    before = _status()["VmRSS"]
    t0 = time.perf_counter()
    ref, _ = plain.run(bars, uni.model.decisions, uni.instruments, TF)
    ref_s = time.perf_counter() - t0
    sizer = spec.sizer(252.0, 1380.0)
    t0 = time.perf_counter()
    est = sizer.estimate(bars, TF)  # the part of run_book below that sizes, timed apart
    estimate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    book = run_book(uni, uni.model.decisions, spec, engine, uni.test)
    book_s = time.perf_counter() - t0
    status = _status()
    n = sum(len(b) for b in bars.values())
    print(RESULT_MARK + json.dumps({
        "bars": n, "build_s": build_s, "reference_s": ref_s, "reference_trades": len(ref.trades),
        "estimate_s": estimate_s, "estimates": len(est.since), "book_s": book_s,
        "book_trades": len(book.result.trades),
        "events": book.result.events["kind"].value_counts().to_dict(),
        "vmhwm_mib": status["VmHWM"], "rss_before_mib": before,
        "bars_mib": sum(b.memory_usage(deep=True).sum() for b in bars.values()) / 2**20,
        "decisions_mib": sum(d.memory_usage(deep=True).sum()
                             for d in uni.model.decisions.values()) / 2**20}), flush=True)


def test_portfolio_simulation_8_symbols_2_years():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "from tests.benchmarks.test_bench_portfolio import child; child()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith(RESULT_MARK))
    r = json.loads(line[len(RESULT_MARK):])
    assert r["bars"] == len(SYMBOLS) * SESSIONS * PER_SESSION
    assert r["book_trades"] > 1000 and r["estimates"] >= SESSIONS - 15
    table("portfolio simulation: 8 symbols x 2 years of 5-minute bars",
          ["what", "seconds", "x reference", "bars / s", "trades"],
          [["engine alone (reference: 1 contract, no portfolio)", r["reference_s"], 1.0,
            r["bars"] / r["reference_s"], r["reference_trades"]],
           ["portfolio (run_book: estimates, sizing, filter, limits)", r["book_s"],
            r["book_s"] / r["reference_s"], r["bars"] / r["book_s"], r["book_trades"]],
           ["  of which the causal estimates (grid, LW + ERC, daily)", r["estimate_s"],
            r["estimate_s"] / r["reference_s"], None, None]],
          [f"{r['bars']:,} bars; {r['estimates']} estimates; limit events {r['events']}",
           f"peak memory of the process (VmHWM) {r['vmhwm_mib']:,.0f} MiB; resident before "
           f"the timed runs (imports, bars, predictions, warm-up) {r['rss_before_mib']:,.0f} "
           f"MiB; the bars alone {r['bars_mib']:,.0f} MiB, the predictions "
           f"{r['decisions_mib']:,.0f} MiB",
           f"building the synthetic bars and predictions: {r['build_s']:.1f} s (not counted)"])
