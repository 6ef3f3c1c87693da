"""``task=simulate``: a bundle trades the bars, through its streaming predictor and the engine.

    python run.py task=simulate bundle=<run>/bundle data.days=90 sim.latency=1 sim.sizing=vol_target
    python run.py task=simulate bundle=<run> data=csv data.path=<bars> sim.replay=batch
    python run.py task=simulate bundle=<run> data.days=120 sim.retrain_every=20

writes ``simulation/`` in the run directory: ``trades``, ``orders``, ``fills``, ``events``,
``positions`` (per symbol bar, contracts and P&L in currency) and ``equity`` (per bar) as
parquet, ``summary.json``, ``sim_metrics.json``, ``tearsheet.html`` with its PNGs,
``predictions_log.parquet`` (every decision with its inputs, the action and, once its
horizon has passed, the realised label) and ``replay.json`` (mode, bars per second, the
segments and the bundle version that traded each). With ``sim.retrain_every`` every refit is
a bundle of its own under ``simulation/refits/rNN/bundle`` (with its config and metrics).

The bars before the replay's start (``sim.replay_from``, by default past the bundle's training
data) warm the streamers and the engine (volatility estimates) up; decisions start after.
``sim.horizon`` and ``sim.threshold``, left at their defaults, follow the bundle (its label
horizon and its run's ``evaluation.threshold``).
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.config import build
from factory.evaluation.regime_report import regime_states
from factory.monitoring.log import PredictionLog
from factory.simulation import SimResult, from_predictions
from factory.simulation.predictions import prediction_log
from factory.tasks import replay as R
from factory.tasks.common import load_bundle, run_dir
from factory.tasks.walkforward import (
    refit,
    replay_start,
    segment_cuts,
    training_config,
    window_start,
)

log = logging.getLogger(__name__)


def simulator(cfg: DictConfig, bundle, train_cfg: DictConfig | None):
    """``cfg.sim`` built, its horizon and threshold following the bundle when left at their
    interpolated defaults."""
    node = cfg.sim.copy()
    raw = OmegaConf.to_container(cfg.sim, resolve=False)
    if raw.get("horizon") == "${horizon}":
        node.horizon = int(bundle.labeling["horizon"])
    trained = OmegaConf.select(train_cfg, "evaluation.threshold") if train_cfg else None
    if raw.get("threshold") == "${evaluation.threshold}" and trained is not None:
        node.threshold = float(trained)
    return build(node)


def _slice(barset, start, end) -> dict[str, pd.DataFrame]:
    out = {}
    for sym, bars in barset.bars.items():
        keep = bars.index >= start if start is not None else np.ones(len(bars), bool)
        if end is not None:
            keep &= bars.index < end
        out[sym] = bars.loc[keep]
    return out


def _regimes(barset, start) -> pd.DataFrame:
    """Volatility and trend regime per bar (the evaluation's causal regime groups)."""
    parts = []
    for sym, bars in barset.bars.items():
        states = regime_states(bars)
        frame = pd.DataFrame({"timestamp": bars.index, "symbol": sym, **states})
        parts.append(frame[frame["timestamp"] >= start])
    return pd.concat(parts, ignore_index=True)


def _warm_engine(sim, barset, start):
    """The engine's state after the bars before ``start`` (no decisions: flat; volatility
    estimates and the session clock warm up)."""
    state = sim.start(barset.symbols)
    history = _slice(barset, None, start)
    if all(len(b) for b in history.values()):
        _, state = sim.run(history, {}, barset.instruments, barset.timeframe, state)
    return state


def run(cfg: DictConfig) -> float:
    started = time.perf_counter()
    bundle = load_bundle(cfg)
    retrain = OmegaConf.select(cfg, "sim.retrain_every")
    train_cfg = training_config(bundle, required=bool(retrain))
    sim = simulator(cfg, bundle, train_cfg)
    sim.tearsheet.title = f"{sim.tearsheet.title}: {bundle.name}"
    barset = build(cfg.data).load()
    bundle.check_bars(barset, source=f"data={cfg.data.get('_target_', '').split('.')[-1]}")
    start = replay_start(sim.replay_from, bundle, barset)
    cuts = segment_cuts(barset, start, sim.retrain_every, sim.session_gap_minutes)
    out = run_dir(cfg) / "simulation"
    out.mkdir(parents=True, exist_ok=True)
    state = _warm_engine(sim, barset, start)
    data_node = OmegaConf.to_container(cfg.data, resolve=True)
    trusted = list(cfg.get("trusted_modules") or [])
    parts, logs, segments, fed, seconds = [], [], [], 0, 0.0
    for k, (a, b) in enumerate(cuts):
        if k > 0:
            bundle = refit(train_cfg, data_node, window_start(
                barset, a, sim.retrain_window, sim.session_gap_minutes), a,
                out / "refits" / f"r{k:02d}", cfg.paths.cache_dir, sim.retrain_overrides,
                trusted, bool(cfg.get("allow_version_mismatch", False)))
        rep = R.stream(bundle, barset, a, b) if sim.replay == "stream" else \
            R.batch(bundle, barset, a, b)
        fed, seconds = fed + rep.bars, seconds + rep.seconds
        result, state = sim.run(_slice(barset, a, b), from_predictions(rep.pred),
                                barset.instruments, barset.timeframe, state)
        tag = R.model_tag(bundle)
        parts.append(result)
        logs.append(prediction_log(rep.pred, result, sim.threshold, sim.horizon,
                                   barset.timeframe, rep.features, model=tag).frame())
        segments.append({"start": str(a), "end": None if b is None else str(b), "model": tag,
                         "bundle": str(bundle.path), "decisions": int(len(rep.pred)),
                         "trades": int(len(result.trades)), "equity": state.equity})
        log.info("segment %d/%d [%s, %s): %d decisions by %s, %d trades, equity %.2f",
                 k + 1, len(cuts), a, b or "end", len(rep.pred), tag, len(result.trades),
                 state.equity)
    result = SimResult.concat(parts, sim.initial_capital)
    result.save(out)
    labels = bundle.labeling["config"]
    plog = PredictionLog(pd.concat(logs, ignore_index=True))
    resolved = plog.resolve(barset.bars, bundle.instruments, labels.get("vertical", "zero"),
                            bool(labels.get("include_costs", True)))
    plog.write(out / "predictions_log.parquet")
    metrics = sim.tearsheet.write(result, out, {s: i.point_value for s, i in
                                                barset.instruments.items()},
                                  barset.timeframe, regimes=_regimes(barset, start))
    rate = fed / seconds if seconds > 0 else float("nan")
    info = {"replay": sim.replay, "bars": fed, "seconds": seconds, "bars_per_second": rate,
            "start": str(start), "segments": segments, "decisions": int(len(plog.frame())),
            "resolved": resolved, "wall_seconds": time.perf_counter() - started}
    (out / "replay.json").write_text(json.dumps(info, indent=2, default=str))
    if not len(result.trades):
        log.warning("the simulation made no trade: no class probability reached "
                    "`sim.threshold` = %g, or every order sized to 0 contracts (see "
                    "summary.json)", sim.threshold)
    log.info("replayed %d bars (%s) in %.1fs: %.1f bars/s", fed, sim.replay, seconds, rate)
    log.info("simulated %s on %s from %s: %d trades, net P&L %.2f, Sharpe %s, max drawdown "
             "%s -> %s (%.1fs)", bundle.name, ",".join(barset.symbols), start,
             metrics["trades"], metrics["net_pnl"], _num(metrics.get("sharpe")),
             _num(metrics.get("max_drawdown"), "{:.2%}"), out / "tearsheet.html",
             time.perf_counter() - started)
    sharpe = metrics.get("sharpe")
    return float("nan") if sharpe is None else float(sharpe)


def _num(value, fmt: str = "{:.2f}") -> str:
    return "–" if value is None or not np.isfinite(value) else fmt.format(value)

