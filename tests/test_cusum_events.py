"""`labeling.events=cusum`: the CUSUM filter by hand, its causality, and Phase 1 keeping only
the sampled bars with splits, purging and weights intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from factory.errors import FactoryError
from factory.experiment import run
from factory.labeling.events import _cusum, cusum_events, event_mask
from factory.labeling.weights import average_uniqueness
from factory.labeling.widths import ewma_vol
from factory.phase1 import load_or_build
from tests.conftest import compose_config


def test_cusum_filter_by_hand():
    # threshold 1.0 throughout: s+ = 0.6, 1.2 (event at 1, reset), s- = -0.5 ... ;
    r = np.array([0.6, 0.6, -0.5, -0.6, 0.3, 0.2, 0.9, -1.1, 0.0])
    h = np.ones(len(r))
    # t: s+ / s- after the update, event?
    # 0: 0.6 / 0      -
    # 1: 1.2 / 0      up -> s+ = 0
    # 2: 0 / -0.5     -
    # 3: 0 / -1.1     down -> s- = 0
    # 4: 0.3 / 0      -
    # 5: 0.5 / 0      -
    # 6: 1.4 / 0      up -> s+ = 0
    # 7: 0 / -1.1     down -> s- = 0
    # 8: 0 / 0        -
    np.testing.assert_array_equal(np.flatnonzero(_cusum(r, h)), [1, 3, 6, 7])
    h[5:] = np.nan  # no threshold (warm-up): no update, no event
    np.testing.assert_array_equal(np.flatnonzero(_cusum(r, h)), [1, 3])


def test_cusum_threshold_is_the_causal_vol_and_sampling_never_looks_ahead():
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 3000)))
    full = cusum_events(close, 2.0, 50)
    r = np.r_[0.0, np.diff(np.log(close))]
    np.testing.assert_array_equal(full, _cusum(r, 2.0 * ewma_vol(close, 50)))
    assert not full[:50].any() and 0.05 < full.mean() < 0.5
    future = close.copy()
    future[2000:] *= np.exp(rng.normal(0, 0.05, 1000))  # a wild, different future
    np.testing.assert_array_equal(cusum_events(future, 2.0, 50)[:2000], full[:2000])
    for t in (700, 1999):
        np.testing.assert_array_equal(cusum_events(close[: t + 1], 2.0, 50), full[: t + 1])
    assert event_mask(close, "all", 2.0, 50).all()
    with pytest.raises(FactoryError, match=r"`labeling.events` must be one of all, cusum"):
        event_mask(close, "daily", 2.0, 50)
    with pytest.raises(FactoryError, match=r"`labeling.cusum_threshold` must be a number > 0"):
        event_mask(close, "cusum", 0.0, 50)


def test_phase1_keeps_only_events_with_purged_splits_and_event_weights(tmp_path):
    cfg = compose_config(tmp_path, "labeling.events=cusum", "labeling.cusum_threshold=2.0")
    ds, _, _ = load_or_build(cfg)
    every = load_or_build(compose_config(tmp_path))[0]
    purge, embargo = cfg.cv.purge_bars, cfg.cv.embargo_bars
    for sym, bars in ds.bars.items():
        meta = ds.meta[ds.meta["symbol"] == sym]
        events = cusum_events(bars["close"].to_numpy(), 2.0, cfg.labeling.vol_span)
        assert events[meta["bar_idx"]].all()  # every row is a sampled bar ...
        start = every.meta.loc[every.meta["symbol"] == sym, "bar_idx"].min()
        expect = np.flatnonzero(events[start:len(bars) - cfg.horizon]) + start
        np.testing.assert_array_equal(meta["bar_idx"].to_numpy(), expect)  # ... and all of them
        report = ds.info["report"]["symbols"][sym]
        assert report["not_sampled"] + report["rows"] == len(bars) - cfg.horizon - start
        # purge and embargo still hold against each later block
        for earlier, later in (("train", "val"), ("val", "test")):
            first = meta.loc[meta["split"] == later, "bar_idx"].min()
            block = meta[meta["split"] == earlier]
            assert (block["exit_idx"] < first - purge).all()
            assert (block["bar_idx"] < first - embargo).all()
        # weights: uniqueness among this symbol's sampled training labels only
        train = meta[meta["split"] == "train"]
        np.testing.assert_allclose(train["weight"], average_uniqueness(
            train["bar_idx"].to_numpy() + 1, train["exit_idx"].to_numpy(), len(bars)))
    assert len(ds.meta) < 0.5 * len(every.meta)
    # the rows' labels equal the every-bar labels of the same bars
    key = ["symbol", "bar_idx"]
    merged = ds.meta[key + ["label", "exit_idx"]].merge(every.meta[key + ["label", "exit_idx"]],
                                                        on=key, suffixes=("", "_all"))
    assert len(merged) > 0.9 * len(ds.meta)
    assert (merged["label"] == merged["label_all"]).all()
    assert (merged["exit_idx"] == merged["exit_idx_all"]).all()


def test_a_run_on_cusum_events_trains_and_reports(tmp_path):
    cfg = compose_config(tmp_path, "labeling.events=cusum", "labeling.cusum_threshold=2.0",
                         "model=xgboost", "model.n_estimators=30", "model.n_jobs=1")
    run(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    ds = load_or_build(cfg)[0]
    assert metrics["test"]["n_samples"] == len(ds.rows("test"))
    assert metrics["test"]["labels"]["n_rows"] == len(ds.rows("test"))
