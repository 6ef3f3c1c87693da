"""Streaming latency per bar: ``Streamer.update`` (features + adapter + model), in-process.

Run: ``python -m pytest tests/benchmarks/test_bench_stream.py -m benchmark -s``.

Two bundles are trained on 45 days of synthetic 5-minute bars (about 8,700 bars a symbol):
xgboost on its default feature set (boosting_optimal: a 15m/30m/1h ladder, HMM regimes and
fracdiff, about 120 columns) and lstm on its default (neural_optimal, 60-bar windows; one
epoch: the weights do not change the cost). Both train and predict on one thread
(``model.n_jobs=1``, ``trainer.num_threads=1``): a stream predicts one row at a time, where
a second thread buys little and a spinning thread pool costs a shared machine a core. Each
:class:`Streamer` is warmed on ``HISTORY`` bars of MES, then fed ``BARS`` new bars one at a
time. Printed: p50 / p95 / p99 milliseconds per bar of the total and of each stage
(features, adapter, model) and the process CPU time, against the issue's goals (p99 <= 10
ms for the booster, 25 ms for the lstm: ``CASES``).

The reference, measured in the same run on the first ``REFERENCE_BARS`` of those bars, is
:class:`WindowFeatureStream` (the whole feature pipeline recomputed for every bar) over a
window holding every bar seen, so it is the batch computation itself. The feature rows must
equal the incremental ones bit for bit (a tree's prediction alone would hide a small feature
difference); the predictions bit for bit for the booster, within 1e-9 for the torch network
(BLAS sums follow the batch shape; tests/test_bundle.py). The speed-up is printed as a
ratio: "incremental is Kx faster".

``FACTORY_BENCH_REPEATS=N`` replays the incremental stream N times (a fresh warm-up each)
and reports the replay with the lowest p99 (a shared machine's stalls land in one replay,
not in the code); every replay is checked against the reference.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.bundle.reader import Bundle
from factory.bundle.stream import Streamer, WindowFeatureStream
from factory.config import build
from factory.experiment import run
from tests.benchmarks.conftest import table
from tests.conftest import compose_config

pytestmark = pytest.mark.benchmark

HISTORY, BARS, REFERENCE_BARS = 3000, 5000, 30  # the issue: p50, p99 over 5,000 bars
WINDOW = HISTORY + BARS  # the reference's window: every bar seen, so it is the batch computation
TRAIN = ["data.days=45", "cv.embargo_bars=100", "cv.purge_bars=20", "tracker=none",
         "evaluation.plots=false"]
CASES = {  # name: (overrides, goal p99 ms per bar, tolerance against the reference)
    "xgboost": (["model=xgboost", "model.n_jobs=1"], 10.0, 0.0),
    "lstm": (["model=lstm", "trainer.max_epochs=1", "trainer.progress=false",
              "trainer.num_threads=1"], 25.0, 1e-9),
}
STAGES = ("total", "features", "adapter", "model", "cpu")
OUTPUTS = ("p_short", "p_flat", "p_long", "expected_return", "confidence")


def _replay(bundle: Bundle, bars: pd.DataFrame, n: int, feature_stream=None):
    """Warm a Streamer on the first HISTORY bars, feed the next ``n``; (predictions, their
    feature rows, ms per stage)."""
    streamer = Streamer(bundle, "MES", feature_stream=feature_stream)
    streamer.warm_up(bars.iloc[:HISTORY])
    feed = bars.iloc[HISTORY:HISTORY + n]
    preds, rows = [], []
    for ts, row in zip(feed.index, feed.itertuples(index=False), strict=True):
        preds.append(streamer.update({"timestamp": ts, **row._asdict()}))
        if len(rows) < REFERENCE_BARS:  # outside the timed update: the rows checked
            rows.append(streamer.rows[""].last(1)[0].copy())
    assert all(p["ready"] for p in preds), [p for p in preds if not p["ready"]][:2]
    t = 1000.0 * np.asarray(streamer.timings, np.float64)
    ms = {"total": t[:, :3].sum(axis=1), "features": t[:, 0], "adapter": t[:, 1],
          "model": t[:, 2], "cpu": t[:, 3]}
    return preds, np.array(rows), ms


def _outputs(preds: list[dict]) -> np.ndarray:
    keys = [k for k in OUTPUTS if k in preds[0]]
    return np.array([[p[k] for k in keys] for p in preds], np.float64)


def _pct(ms: dict, stage: str, q: float) -> float:
    return float(np.percentile(ms[stage], q))


def test_streaming_latency_per_bar(tmp_path):
    repeats = max(int(os.environ.get("FACTORY_BENCH_REPEATS", "1")), 1)
    rows, notes, missed = [], [], []
    for name, (overrides, goal, tol) in CASES.items():
        cfg = compose_config(tmp_path / name, *TRAIN, *overrides, tiny=False)
        t0 = time.perf_counter()
        run(cfg)
        trained = time.perf_counter() - t0
        bundle = Bundle.load(Path(cfg.paths.output_dir) / "bundle")
        bars = build(cfg.data).load().bars["MES"]
        assert len(bars) >= HISTORY + BARS and bundle.warmup() < HISTORY

        ref_preds, ref_rows, ref = _replay(bundle, bars, REFERENCE_BARS,
                                           lambda s, sym: WindowFeatureStream(s, sym, WINDOW))
        best = None
        for _ in range(repeats):
            preds, feature_rows, ms = _replay(bundle, bars, BARS)
            got_rows = feature_rows[:REFERENCE_BARS]
            same = (got_rows == ref_rows) | (np.isnan(got_rows) & np.isnan(ref_rows))
            assert same.all(), (name, "feature columns differ from batch:",
                                [bundle.features.columns[j] for j in
                                 np.flatnonzero(~same.all(axis=0))][:5])
            got, want = _outputs(preds[:REFERENCE_BARS]), _outputs(ref_preds)
            assert [p["timestamp"] for p in preds[:REFERENCE_BARS]] == \
                [p["timestamp"] for p in ref_preds]
            diff = float(np.abs(got - want).max())
            assert got.shape == want.shape and diff <= tol, (name, diff, tol)
            if best is None or _pct(ms, "total", 99) < _pct(best, "total", 99):
                best = ms

        p99 = _pct(best, "total", 99)
        load = os.getloadavg()[0]
        for stage in STAGES:
            rows.append([name, stage, *(_pct(best, stage, q) for q in (50, 95, 99)),
                         *(_pct(ref, stage, q) for q in (50, 99)),
                         _pct(ref, stage, 50) / max(_pct(best, stage, 50), 1e-9)
                         if stage != "adapter" else None,
                         (f"{'met' if p99 <= goal else 'MISSED'} (<= {goal:g})"
                          if stage == "total" else "")])
        notes.append(f"{name}: {len(bundle.features.columns)} feature columns, trained in "
                     f"{trained:.0f}s; over {REFERENCE_BARS} bars, incremental vs reference: "
                     f"{ref_rows.size} feature values bit for bit, max |dp| {diff:.1e} "
                     f"(allowed {tol:g}); incremental is "
                     f"{_pct(ref, 'total', 50) / _pct(best, 'total', 50):.0f}x faster per "
                     f"bar (p50)")
        if p99 > goal:
            missed.append(f"{name}: p99 {p99:.2f} ms > goal {goal:g} ms (1-min load {load:.1f})")
    table(f"Streamer.update per bar, ms (MES, {HISTORY} bars of warm-up, {BARS} bars replayed; "
          f"reference: WindowFeatureStream over every bar seen, first {REFERENCE_BARS} bars)",
          ["bundle", "stage", "p50", "p95", "p99", "ref p50", "ref p99", "ref/inc p50",
           "goal p99"], rows,
          notes + [f"best of {repeats} replay(s) by p99 (FACTORY_BENCH_REPEATS)",
                   "total = features + adapter + model (wall clock); cpu: process CPU time "
                   "of the whole update (all threads)", f"ref p99 over {REFERENCE_BARS} bars is "
                   "close to their maximum"])
    # The goals hold with a wide margin on an idle 2-core machine (docs/streaming.md); a
    # miss means the code got slower, or the machine is too busy to measure: rerun idle.
    assert not missed, missed
