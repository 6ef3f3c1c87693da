"""Hydra callback: after a multirun or sweep, one table comparing every job's metrics.

Reads each job's ``metrics.json`` under the sweep directory, logs a table sorted by the
objective, writes it as ``summary.csv`` beside the jobs, reports the selection's
backtest-overfitting statistics (PBO, deflated Sharpe) in ``overfitting.json`` and in the
best job's ``metrics.json`` (``multirun`` block), and writes the model comparison report
(``model_comparison.md``, see :mod:`factory.tracking.comparison`).

A job that fails does not take the others' results with it: ``on_job_end`` writes its
error line to ``<job>/failed.json`` and into the job's own ``run.log`` (with the traceback
when the error is not a :class:`FactoryError`), and the summary lists it with that line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from factory.errors import FactoryError
from factory.evaluation.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from factory.tracking.comparison import write_comparison

log = logging.getLogger(__name__)
COLUMNS = ["f1_macro", "accuracy", "log_loss", "sharpe", "max_drawdown", "n_trades"]
FAILED_FILE = "failed.json"


def error_line(error: BaseException | str) -> str:
    """One line for a job's error: the FactoryError message, else ``Type: first line``."""
    if isinstance(error, str):
        return error
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(error, FactoryError) else f"{type(error).__name__}: {first}"


def _job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in Path(sweep_dir).iterdir()
                  if p.is_dir() and ((p / "metrics.json").is_file() or (p / ".hydra").is_dir()))


def collect(sweep_dir: Path, objective: str = "val.f1_macro") -> pd.DataFrame:
    """One row per job directory holding a metrics.json, best objective first."""
    split_name, metric = objective.split(".", 1) if "." in objective else ("val", objective)
    columns = COLUMNS + ([metric] if metric not in COLUMNS else [])
    rows = []
    for path in sorted(Path(sweep_dir).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        row = {"job": path.parent.name, "model": metrics["info"]["model"],
               "horizon": metrics["info"]["horizon"]}
        for split in ("val", "test"):
            row.update({f"{split}.{k}": metrics[split].get(k) for k in columns})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame) and objective in frame:
        ascending = objective.endswith("log_loss")
        frame = frame.sort_values(objective, ascending=ascending, kind="stable")
    return frame


def _job_choice(job: Path) -> tuple[Any, Any]:
    """(model, horizon) of a job from the config Hydra saved in it."""
    model = horizon = None
    hydra_yaml, config_yaml = job / ".hydra" / "hydra.yaml", job / ".hydra" / "config.yaml"
    if hydra_yaml.is_file():
        model = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices.model")
    if config_yaml.is_file():
        horizon = OmegaConf.select(OmegaConf.load(config_yaml), "horizon")
    return model, horizon


def _last_error_in_log(job: Path) -> str | None:
    for log_file in job.glob("*.log"):
        errors = [ln for ln in log_file.read_text(errors="replace").splitlines()
                  if "][ERROR] - " in ln]
        if errors:
            return errors[-1].split("][ERROR] - ", 1)[1]
    return None


def failed_jobs(sweep_dir: Path) -> pd.DataFrame:
    """Job directories without a metrics.json, with the error line each left behind."""
    rows = []
    for job in _job_dirs(sweep_dir):
        if (job / "metrics.json").is_file():
            continue
        if (job / FAILED_FILE).is_file():
            error = json.loads((job / FAILED_FILE).read_text())["error"]
        else:
            error = _last_error_in_log(job) or "no metrics.json: the job was killed or did " \
                                               "not finish"
        model, horizon = _job_choice(job)
        rows.append({"job": job.name, "model": model, "horizon": horizon, "error": error})
    return pd.DataFrame(rows, columns=["job", "model", "horizon", "error"])


class MultirunSummary(Callback):
    """Registered in ``conf/config.yaml`` under ``hydra.callbacks``."""

    def __init__(self, objective: str = "val.f1_macro") -> None:
        self.objective = objective

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A failed job leaves its error line in failed.json and in its own run.log."""
        if job_return.status != JobStatus.FAILED:
            return
        error = job_return._return_value
        line = error_line(error) if error is not None else "failed"
        out_dir = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir") or "."))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / FAILED_FILE).write_text(json.dumps(
            {"error": line, "type": type(error).__name__,
             "overrides": list(job_return.overrides or [])}, indent=2))
        trace = error if isinstance(error, BaseException) and not isinstance(
            error, FactoryError) else None
        log.error("job failed: %s", line,
                  exc_info=(type(trace), trace, trace.__traceback__) if trace else None)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        frame, failed = collect(sweep_dir, self.objective), failed_jobs(sweep_dir)
        if frame.empty and failed.empty:
            return
        table = pd.concat([frame.assign(status="ok"), failed.assign(status="failed")],
                          ignore_index=True)
        table.to_csv(sweep_dir / "summary.csv", index=False)
        if len(frame):
            text = frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")
            log.info("multirun summary (%d jobs, sorted by %s):\n%s\nwritten to %s",
                     len(frame), self.objective, text, sweep_dir / "summary.csv")
        for row in failed.itertuples():
            log.error("job %s failed: %s", row.job, row.error)
        if len(failed):
            log.error("%d of %d jobs failed; the summary covers the %d that succeeded",
                      len(failed), len(frame) + len(failed), len(frame))
        stats = overfitting_report(sweep_dir, frame) if len(frame) else {}
        if stats:
            (sweep_dir / "overfitting.json").write_text(json.dumps(stats, indent=2))
            self._record_in_best_job(sweep_dir, stats)
            log.info("backtest overfitting over %d jobs (%s returns): PBO %s, deflated Sharpe "
                     "%s", stats["n_strategies"], stats["returns"],
                     f"{stats['pbo']:.3f}" if "pbo" in stats else f"n/a ({stats['pbo_undefined']})",
                     f"of {stats['best_job']} {stats['deflated_sharpe']:.4f}"
                     if stats["deflated_sharpe"] is not None
                     else f"undefined ({stats['deflated_sharpe_undefined']})")
        by_horizon = {}
        if len(frame) and frame["horizon"].nunique() > 1:
            by_horizon = {int(h): overfitting_report(sweep_dir, rows)
                          for h, rows in frame.groupby("horizon")}
        write_comparison(sweep_dir, frame, failed, self.objective, stats, by_horizon)

    @staticmethod
    def _record_in_best_job(sweep_dir: Path, stats: dict) -> None:
        best = sweep_dir / stats["best_job"] / "metrics.json"
        metrics = json.loads(best.read_text())
        metrics["multirun"] = stats  # the selection's statistics, with the selected run
        best.write_text(json.dumps(metrics, indent=2))


def _returns(job: Path, source: str) -> pd.Series | None:
    path = job / "predictions" / f"{source}_returns.parquet"
    return pd.read_parquet(path)["ret"] if path.is_file() else None


def overfitting_report(sweep_dir: Path, frame: pd.DataFrame, n_partitions: int = 16) -> dict:
    """PBO across the multirun's jobs and the deflated Sharpe of the best one.

    Strategies are the jobs; their per-bar returns come from out-of-fold predictions when
    every job has them (k-fold cv), else from the validation split, the split the objective
    selects on. Returns are aligned on bar timestamps (no position = 0 return). The DSR
    deflates the best job's per-bar Sharpe by the expected maximum of ``len(jobs)`` trials.
    It needs the variance of the trials' Sharpes, so with fewer than two jobs whose Sharpe
    is finite (one trial, or jobs that never traded) it is reported as undefined, with the
    reason in ``deflated_sharpe_undefined``. CPCV jobs add a PBO over their backtest paths'
    Sharpe ratios.
    """
    if frame.empty:
        return {}
    jobs = [sweep_dir / j for j in frame["job"]]
    source = "oof" if all((j / "predictions" / "oof_returns.parquet").is_file()
                          for j in jobs) else "val"
    series = {j.name: _returns(j, source) for j in jobs}
    series = {k: v for k, v in series.items() if v is not None}
    if not series:
        return {}
    returns = pd.DataFrame(series).sort_index().fillna(0.0)
    out: dict = {"returns": source, "n_strategies": returns.shape[1], "n_obs": len(returns)}
    if returns.shape[1] < 2:
        out["pbo_undefined"] = "needs at least 2 jobs"
    elif len(returns) >= 2 * n_partitions:
        pbo = probability_of_backtest_overfitting(returns.to_numpy(), n_partitions)
        out["pbo"] = pbo.pbo
        out["pbo_partitions"] = n_partitions
    else:
        out["pbo_undefined"] = f"needs {2 * n_partitions} bars, got {len(returns)}"
    best = next(j for j in frame["job"] if j in series)  # frame is sorted, best first
    std = returns.std(ddof=1)
    sharpes = (returns.mean() / std.where(std > 0)).astype(float)
    finite = sharpes[np.isfinite(sharpes)]
    r = returns[best]
    out["best_job"] = best
    out["best_sharpe_per_bar"] = float(sharpes[best]) if np.isfinite(sharpes[best]) else None
    if len(finite) < 2 or not np.isfinite(sharpes[best]):
        why = ("the best job's returns are constant (no trades)" if not np.isfinite(
            sharpes[best]) else f"needs the Sharpe of at least 2 trials, got {len(finite)} "
                                f"finite of {len(sharpes)}")
        out["deflated_sharpe"] = None
        out["deflated_sharpe_undefined"] = why
    else:
        out["deflated_sharpe"] = deflated_sharpe_ratio(
            float(sharpes[best]), len(series), float(finite.var(ddof=1)), len(r),
            float(r.skew()), float(r.kurt() + 3.0))
    paths = [j / "paths.csv" for j in jobs]
    if len(paths) >= 2 and all(p.is_file() for p in paths):
        matrix = np.column_stack([pd.read_csv(p)["sharpe"].to_numpy() for p in paths])
        s = (len(matrix) // 2) * 2
        if s >= 2:
            out["pbo_cpcv_paths"] = probability_of_backtest_overfitting(
                matrix, s, metric="mean").pbo
    return out
