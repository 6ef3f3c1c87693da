"""Bundles: what was backtested is exactly what predicts.

A run's ``bundle/`` turns the run's own bars back into its test predictions (batch and one
bar at a time) with no Phase-1 cache, and refuses what it cannot read with one clear line.
The full family list (six tabular models, lstm, resnet1d, patchtst, nhits, a zero-shot
forecaster, a stacking ensemble over three families) runs under the ``slow`` marker; the
default suite keeps a booster, lstm and a two-family stack.

Tolerance per family: the tree models reproduce the run bit for bit. Models with a matrix
product (logistic regression, the SVM's kernel map, torch networks evaluated in float64,
combiners) see other batch sizes when a bundle predicts all bars at once, or one bar at a
time, than when the run predicted the test split, and BLAS sums in an order that follows the
batch: they agree to the last bits, and max |dp| <= 1e-9 is asserted (measured ~1e-16).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.bundle.format import MANIFEST, read_manifest
from factory.bundle.reader import Bundle
from factory.config import build
from factory.dataset import PROBA_COLUMNS
from factory.errors import FactoryError
from factory.experiment import run
from factory.tasks.predict import stream_predictions

FAST_TORCH = ["trainer.max_epochs=1", "trainer.progress=false", "trainer.num_threads=1"]
STACK2 = ["ensemble=stacking", "ensemble.base_models=[xgboost,logistic]",
          "ensemble.oof_cv.n_splits=3",
          "ensemble.base_overrides={xgboost:['features=core','model.n_estimators=40'],"
          "logistic:['features=core']}"]
STACK = ["ensemble=stacking", "ensemble.base_models=[xgboost,logistic,lstm]",
         "ensemble.oof_cv.n_splits=3",
         "ensemble.base_overrides={xgboost:['features=core','model.n_estimators=40'],"
         "logistic:['features=core'],lstm:['features=core','trainer.max_epochs=1',"
         "'adapter.seq_len=16','trainer.progress=false']}"]
FAMILIES = {
    "xgboost": ["model=xgboost", "model.n_estimators=40"],
    "lightgbm": ["model=lightgbm", "model.n_estimators=40"],
    "catboost": ["model=catboost", "model.n_estimators=60"],
    "random_forest": ["model=random_forest", "model.n_estimators=30"],
    "logistic": ["model=logistic"],
    "svm": ["model=svm", "model.n_components=64"],
    "lstm": ["model=lstm", "adapter.seq_len=16", *FAST_TORCH],
    "resnet1d": ["model=resnet1d", "adapter.seq_len=8", *FAST_TORCH],
    "patchtst": ["model=patchtst", "adapter.seq_len=24", *FAST_TORCH],
    "nhits": ["model=nhits", "adapter.seq_len=24", *FAST_TORCH],
    "chronos_bolt": ["model=chronos_bolt", "adapter.context_len=64"],
    "stacking": STACK,
    "stacking2": STACK2,
}
DEFAULT = ("xgboost", "lstm", "stacking2")
EXACT = {"xgboost", "lightgbm", "catboost", "random_forest"}


def tolerance(name: str) -> float:
    return 0.0 if name in EXACT else 1e-9


def _params():
    return [pytest.param(name, marks=() if name in DEFAULT else pytest.mark.slow)
            for name in FAMILIES]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run per family (shared Phase-1 cache), trained on first use."""
    from tests.conftest import compose_config

    root = tmp_path_factory.mktemp("bundles")
    runs = {}

    def get(name: str):
        if name not in runs:
            overrides = list(FAMILIES[name])
            if name == "chronos_bolt":
                from tests.test_foundation import tiny_chronos_bolt

                overrides.append(f"model.weights={tiny_chronos_bolt(root / 'weights')}")
            cfg = compose_config(root / name, *overrides, f"paths.cache_dir={root / 'cache'}")
            run(cfg)
            runs[name] = (cfg, Path(cfg.paths.output_dir))
        return runs[name]

    return get


def _compare(run_dir: Path, pred: pd.DataFrame) -> tuple[int, int, float]:
    test = pd.read_parquet(run_dir / "predictions" / "test.parquet")
    both = test.merge(pred, on=["timestamp", "symbol"], suffixes=("", "_b"))
    diff = np.abs(both[PROBA_COLUMNS].to_numpy()
                  - both[[f"{c}_b" for c in PROBA_COLUMNS]].to_numpy())
    return len(test), len(both), float(diff.max())


@pytest.mark.parametrize("name", _params())
def test_bundle_predicts_the_runs_test_rows_bit_for_bit(trained, name):
    cfg, out = trained(name)
    bundle = Bundle.load(out / "bundle")
    pred = bundle.predict(build(cfg.data).load())
    n_test, matched, diff = _compare(out, pred)
    assert matched == n_test and diff <= tolerance(name), (name, matched, n_test, diff)


@pytest.mark.parametrize("name", _params())
def test_streaming_equals_batch_over_the_test_period(trained, name):
    cfg, out = trained(name)
    bundle = Bundle.load(out / "bundle")
    barset = build(cfg.data).load()
    test = pd.read_parquet(out / "predictions" / "test.parquet")
    start = test["timestamp"].min()
    n_bars = 25  # the first bars of the test period, each fed alone after the warm-up
    first = {s: int((b.index < start).sum()) for s, b in barset.bars.items()}
    barset.bars = {s: b.iloc[: first[s] + n_bars] for s, b in barset.bars.items()}
    pred, latency = stream_predictions(bundle, barset, warmup=min(first.values()))
    assert latency["bars"] >= n_bars and latency["total_ms_99"] > 0
    _, matched, diff = _compare(out, pred)
    assert matched >= n_bars and diff <= tolerance(name), (name, matched, diff)


def test_streamer_keeps_the_newest_bars_and_rows(trained):
    """The kept bars (what barrier widths and bar-reading predictors see) are exactly the
    newest ``keep`` bars fed, across the tape's shifts; the feature rows likewise."""
    from factory.bundle.stream import OHLCV, Streamer

    cfg, out = trained("xgboost")
    bundle = Bundle.load(out / "bundle")
    bars = build(cfg.data).load().bars["MES"][list(OHLCV)]
    first, keep = bundle.warmup() + 1, 16
    live = Streamer(bundle, "MES", keep=keep)
    live.warm_up(bars.iloc[:first])
    rows = []
    for k, (ts, row) in enumerate(zip(bars.index[first:first + 40],
                                      bars.to_numpy()[first:first + 40], strict=True)):
        live.update({"timestamp": ts, **dict(zip(OHLCV, row, strict=True))})
        rows.append(live.rows[""].last(1)[0].copy())
        if k in (0, keep - 1, keep, 2 * keep + 3):  # before, at and after the shifts
            end = first + k + 1
            pd.testing.assert_frame_equal(live.bars, bars.iloc[end - keep:end],
                                          check_freq=False)
    np.testing.assert_array_equal(live.rows[""].last(keep), np.array(rows[-keep:]))


def test_refusals_name_the_file_and_the_fix(trained, tmp_path):
    cfg, out = trained("xgboost")
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(out / "bundle", bundle_dir)
    model = bundle_dir / "predictor" / "model.ubj"
    raw = bytearray(model.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    model.write_bytes(bytes(raw))
    with pytest.raises(FactoryError, match=r"model\.ubj: SHA-256 differs .* restore it"):
        Bundle.load(bundle_dir)
    shutil.copytree(out / "bundle", tmp_path / "extra")
    (tmp_path / "extra" / "notes.txt").write_text("x")
    with pytest.raises(FactoryError, match=r"\['notes.txt'\] are not in manifest.json"):
        Bundle.load(tmp_path / "extra")
    shutil.copytree(out / "bundle", tmp_path / "newer")
    manifest = json.loads((tmp_path / "newer" / MANIFEST).read_text())
    (tmp_path / "newer" / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(FactoryError, match="format version 99 is newer"):
        Bundle.load(tmp_path / "newer")
    old = {**manifest, "libraries": {**manifest["libraries"], "xgboost-cpu": "1.7.6"}}
    (tmp_path / "newer" / MANIFEST).write_text(json.dumps(old))
    with pytest.raises(FactoryError, match=r"xgboost-cpu 1\.7\.6 .*allow_version_mismatch=true"):
        read_manifest(tmp_path / "newer")
    assert read_manifest(tmp_path / "newer", allow_version_mismatch=True)["name"]
    (tmp_path / "newer" / MANIFEST).unlink()
    with pytest.raises(FactoryError, match="manifest.json is missing"):
        Bundle.load(tmp_path / "newer")


def test_bars_it_cannot_read_are_refused(trained):
    cfg, out = trained("xgboost")
    bundle = Bundle.load(out / "bundle")
    barset = build(cfg.data).load()
    short = type(barset)(bars={s: b.iloc[:50] for s, b in barset.bars.items()},
                         instruments=barset.instruments, timeframe=barset.timeframe)
    with pytest.raises(FactoryError, match=r"too few bars to warm up .* at least \d+ bars"):
        bundle.check_bars(short)
    other = type(barset)(bars={"NQ": barset.bars["MES"]}, instruments=barset.instruments,
                         timeframe=barset.timeframe)
    with pytest.raises(FactoryError, match=r"symbol\(s\) \['NQ'\] not in the bundle"):
        bundle.check_bars(other)
    hourly = type(barset)(bars=barset.bars, instruments=barset.instruments,
                          timeframe=pd.Timedelta("15min"))
    with pytest.raises(FactoryError, match="data.timeframe=5min"):
        bundle.check_bars(hourly)
