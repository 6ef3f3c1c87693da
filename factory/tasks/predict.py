"""``task=predict``: a bundle's predictions of new bars, in one batch or one bar at a time.

    python run.py task=predict bundle=<run>/bundle data=csv data.path=<bars>
    python run.py task=predict bundle=<run>/bundle predict.mode=stream data.days=60

writes ``predictions.parquet`` (timestamp, symbol, p_short, p_flat, p_long, and
expected_return / confidence where the model gives them) to the run directory and logs a
one-line summary. ``stream`` feeds each symbol's bars one at a time through a
:class:`~factory.bundle.stream.Streamer` (after warming it up on the first bars) and also
writes ``latency.json``: p50 / p99 per bar of the total and its parts (features, adapter,
model), the CPU time per bar and the machine's load (docs/streaming.md).
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from factory.bundle.stream import Streamer
from factory.config import build
from factory.dataset import PROBA_COLUMNS
from factory.errors import FactoryError
from factory.tasks.common import load_bundle, run_dir

log = logging.getLogger(__name__)


def stream_predictions(bundle, barset, warmup: int | None = None, streamer=Streamer
                       ) -> tuple[pd.DataFrame, dict]:
    """Replay ``barset`` bar by bar through one streamer per symbol: the predictions, and
    the latency per bar (:func:`latency_summary`)."""
    frames, timings = [], []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for sym in barset.symbols:
        bars = barset.bars[sym]
        first = max(bundle.warmup() + 1, int(warmup or 0))
        live = streamer(bundle, sym)
        live.warm_up(bars.iloc[:first])
        out = []
        for ts, row in zip(bars.index[first:], bars.iloc[first:].itertuples(index=False),
                           strict=True):
            pred = live.update({"timestamp": ts, **row._asdict()})
            if pred.get("ready"):
                out.append(pred)
        frames.append(pd.DataFrame(out).drop(columns=["ready", "version"], errors="ignore"))
        timings += live.timings
    latency = latency_summary(timings)
    latency["load_1min"] = {"start": load, "end": os.getloadavg()[0]
                            if hasattr(os, "getloadavg") else None, "cores": os.cpu_count()}
    return pd.concat(frames, ignore_index=True), latency


def latency_summary(timings: list[tuple]) -> dict:
    """p50 / p99 in milliseconds per bar of the total (one new bar -> prediction) and its
    parts (features, adapter, model), and the process CPU time per bar: on a busy machine
    the wall-clock figures include time waiting for a core, the CPU time does not."""
    t = np.asarray(timings, np.float64).reshape(-1, 4) * 1000.0
    parts = {"total": t[:, :3].sum(axis=1), "features": t[:, 0], "adapter": t[:, 1],
             "model": t[:, 2], "cpu": t[:, 3]}
    return {"bars": int(len(t)),
            **{f"{k}_ms_{q}": float(np.percentile(v, q)) if len(v) else None
               for k, v in parts.items() for q in (50, 99)}}


def run(cfg: DictConfig) -> float:
    started = time.perf_counter()
    bundle = load_bundle(cfg)
    barset = build(cfg.data).load()
    bundle.check_bars(barset, source=f"data={cfg.data.get('_target_', '').split('.')[-1]}")
    mode = str(cfg.predict.mode)
    out = run_dir(cfg)
    if mode == "batch":
        frame = bundle.predict(barset)
    elif mode == "stream":
        frame, latency = stream_predictions(bundle, barset, cfg.predict.get("warmup_bars"))
        (out / "latency.json").write_text(json.dumps(latency, indent=2))
        log.info("stream latency per bar: p50 %.2f ms, p99 %.2f ms (p99 features %.2f, "
                 "adapter %.2f, model %.2f; CPU p50 %.2f ms) over %d bars, load %.1f on %s "
                 "cores", *(latency[k] or 0 for k in (
                     "total_ms_50", "total_ms_99", "features_ms_99", "adapter_ms_99",
                     "model_ms_99", "cpu_ms_50")), latency["bars"],
                 latency["load_1min"]["end"] or 0, latency["load_1min"]["cores"])
    else:
        raise FactoryError(f"`predict.mode` must be batch or stream, got {mode!r}")
    frame.to_parquet(out / "predictions.parquet", index=False)
    shares = np.bincount(frame[PROBA_COLUMNS].to_numpy().argmax(axis=1), minlength=3) / max(
        len(frame), 1)
    log.info("predicted %d bars of %s (%s .. %s) with %s [%s]: short/flat/long %.0f/%.0f/%.0f%% "
             "in %.1fs -> %s", len(frame), ",".join(barset.symbols), frame["timestamp"].min(),
             frame["timestamp"].max(), bundle.name, mode, *(100 * shares),
             time.perf_counter() - started, out / "predictions.parquet")
    return float(len(frame))
