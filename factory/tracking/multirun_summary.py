"""Hydra callback: after a multirun or sweep, one table comparing every job's metrics.

Reads each job's ``metrics.json`` under the sweep directory, logs a table sorted by the
objective, writes it as ``summary.csv`` beside the jobs, and reports the selection's
backtest-overfitting statistics (PBO, deflated Sharpe) in ``overfitting.json`` and in the
best job's ``metrics.json`` (``multirun`` block).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from factory.evaluation.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)

log = logging.getLogger(__name__)
COLUMNS = ["f1_macro", "accuracy", "log_loss", "sharpe", "max_drawdown", "n_trades"]


def collect(sweep_dir: Path, objective: str = "val.f1_macro") -> pd.DataFrame:
    """One row per job directory holding a metrics.json, best objective first."""
    rows = []
    for path in sorted(Path(sweep_dir).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        row = {"job": path.parent.name, "model": metrics["info"]["model"],
               "horizon": metrics["info"]["horizon"]}
        for split in ("val", "test"):
            row.update({f"{split}.{k}": metrics[split].get(k) for k in COLUMNS})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame) and objective in frame:
        ascending = objective.endswith("log_loss")
        frame = frame.sort_values(objective, ascending=ascending, kind="stable")
    return frame


class MultirunSummary(Callback):
    """Registered in ``conf/config.yaml`` under ``hydra.callbacks``."""

    def __init__(self, objective: str = "val.f1_macro") -> None:
        self.objective = objective

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        frame = collect(sweep_dir, self.objective)
        if frame.empty:
            return
        frame.to_csv(sweep_dir / "summary.csv", index=False)
        text = frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")
        log.info("multirun summary (%d jobs, sorted by %s):\n%s\nwritten to %s", len(frame),
                 self.objective, text, sweep_dir / "summary.csv")
        stats = overfitting_report(sweep_dir, frame)
        if stats:
            (sweep_dir / "overfitting.json").write_text(json.dumps(stats, indent=2))
            best = sweep_dir / stats["best_job"] / "metrics.json"
            metrics = json.loads(best.read_text())
            metrics["multirun"] = stats  # the selection's statistics, with the selected run
            best.write_text(json.dumps(metrics, indent=2))
            log.info("backtest overfitting over %d jobs (%s returns): PBO %s, deflated Sharpe "
                     "of %s %.4f", stats["n_strategies"], stats["returns"],
                     f"{stats['pbo']:.3f}" if "pbo" in stats else "n/a (too few bars)",
                     stats["best_job"], stats["deflated_sharpe"])


def _returns(job: Path, source: str) -> pd.Series | None:
    path = job / "predictions" / f"{source}_returns.parquet"
    return pd.read_parquet(path)["ret"] if path.is_file() else None


def overfitting_report(sweep_dir: Path, frame: pd.DataFrame, n_partitions: int = 16) -> dict:
    """PBO across the multirun's jobs and the deflated Sharpe of the best one.

    Strategies are the jobs; their per-bar returns come from out-of-fold predictions when
    every job has them (k-fold cv), else from the validation split, the split the objective
    selects on. Returns are aligned on bar timestamps (no position = 0 return). The DSR
    deflates the best job's per-bar Sharpe by the expected maximum of ``len(jobs)`` trials.
    CPCV jobs add a PBO over their backtest paths' Sharpe ratios.
    """
    jobs = [sweep_dir / j for j in frame["job"]]
    source = "oof" if all((j / "predictions" / "oof_returns.parquet").is_file()
                          for j in jobs) else "val"
    series = {j.name: _returns(j, source) for j in jobs}
    series = {k: v for k, v in series.items() if v is not None}
    if len(series) < 2:
        return {}
    returns = pd.DataFrame(series).sort_index().fillna(0.0)
    out: dict = {"returns": source, "n_strategies": returns.shape[1], "n_obs": len(returns)}
    if len(returns) >= 2 * n_partitions:
        pbo = probability_of_backtest_overfitting(returns.to_numpy(), n_partitions)
        out["pbo"] = pbo.pbo
        out["pbo_partitions"] = n_partitions
    best = frame["job"].iloc[0]  # frame is sorted by the objective, best first
    sharpes = returns.mean() / returns.std(ddof=1).replace(0, np.nan)
    r = returns[best]
    out["best_job"] = best
    out["best_sharpe_per_bar"] = float(sharpes[best])
    out["deflated_sharpe"] = deflated_sharpe_ratio(
        float(sharpes[best]), len(series), float(np.nanvar(sharpes.to_numpy(), ddof=1)),
        len(r), float(r.skew()), float(r.kurt() + 3.0))
    paths = [j / "paths.csv" for j in jobs]
    if all(p.is_file() for p in paths):
        matrix = np.column_stack([pd.read_csv(p)["sharpe"].to_numpy() for p in paths])
        s = (len(matrix) // 2) * 2
        if s >= 2:
            out["pbo_cpcv_paths"] = probability_of_backtest_overfitting(
                matrix, s, metric="mean").pbo
    return out
