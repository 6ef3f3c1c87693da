"""``task=monitor``: grade a prediction log against its bundle; exit 0 healthy, 1 warn, 2 alert.

    python run.py task=monitor bundle=<run>/bundle log=<sim run>/simulation/predictions_log.parquet

compares the log (``predictions_log.parquet``, written by ``task=simulate`` or a live loop's
:class:`~factory.monitoring.log.PredictionLog`) with the reference frozen in the bundle at
training time (``reference.json``: deciles of every feature and class probability, the
validation figures): PSI per feature and per probability, calibration (reliability table,
ECE, Brier), rolling accuracy and per-trade Sharpe against validation, and the retraining
triggers (calendar, accuracy drop, drift) as recommendations. Writes ``monitor/`` in the run
directory (``monitor_report.md`` with its PNGs, ``monitor.json``) and then ends the process
with the report's exit code, so cron or CI can act on it (``SystemExit``; 0 returns).

Only the log rows the bundle itself predicted are graded (the ``model`` column: the bundle's
name and manifest hash); a walk-forward simulation's log holds one model per refit, each
graded with its own bundle (``simulation/refits/rNN/bundle``).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from factory.config import build
from factory.errors import FactoryError
from factory.monitoring.log import PredictionLog
from factory.monitoring.monitor import STATUS
from factory.monitoring.reference import ReferenceProfile
from factory.tasks.common import load_bundle, run_dir
from factory.tasks.replay import model_tag

log = logging.getLogger(__name__)


def rows_of(frame, tag: str, source: str):
    """The log rows predicted by the bundle named ``tag`` (all rows of an untagged log)."""
    models = sorted(str(m) for m in frame["model"].dropna().unique())
    if models in ([], [""]):
        log.warning("%s: the log names no model; grading every row against this bundle",
                    source)
        return frame
    rows = frame[frame["model"] == tag]
    if rows.empty:
        raise FactoryError(f"{source}: no row was predicted by this bundle ({tag}); the log's "
                           f"models are {models[:5]}: pass the bundle that predicted them "
                           f"(a walk-forward refit's is simulation/refits/rNN/bundle)")
    if len(rows) < len(frame):
        log.info("%s: grading the %d of %d rows predicted by %s", source, len(rows),
                 len(frame), tag)
    return rows


def run(cfg: DictConfig) -> float:
    if not cfg.get("log"):
        raise FactoryError("`log` is not set: pass the prediction log, e.g. "
                           "`log=outputs/runs/<date>/<time>_simulate_h20/simulation/"
                           "predictions_log.parquet`")
    monitor = build(cfg.monitor)
    bundle = load_bundle(cfg)
    profile = ReferenceProfile.load(bundle.path / "reference.json")
    frame = rows_of(PredictionLog.read(cfg.log).frame(), model_tag(bundle), str(cfg.log))
    report = monitor.check(profile, frame)
    out = run_dir(cfg) / "monitor"
    report.write(out)
    for rec in report.recommendations:
        log.info("recommendation (%s): %s", rec["trigger"], rec["reason"])
    log.info("monitor %s: %s (exit code %d)%s -> %s", bundle.name, STATUS[report.status].upper(),
             report.exit_code, f"; drifted: {', '.join(report.drifted)}" if report.drifted
             else "", out / "monitor_report.md")
    if report.exit_code:
        raise SystemExit(report.exit_code)
    return 0.0
