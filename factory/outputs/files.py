"""Files in the run directory: predictions, reports, importance, model, metrics, config."""

from __future__ import annotations

import json
import logging
import time

import pandas as pd
from omegaconf import OmegaConf

from factory.outputs.base import RunResult
from factory.training.cross_validation import returns_of
from factory.training.oof_store import OOFStore, model_key

log = logging.getLogger(__name__)


class PredictionFiles:
    """``predictions/<split>.parquet``, ``<split>_trades.parquet``, ``<split>_returns.parquet``
    per evaluated split; for k-fold runs also ``oof.parquet``, ``oof_returns.parquet``,
    ``folds.csv`` and (CPCV) ``paths.csv``."""

    def write(self, result: RunResult) -> None:
        folder = result.out_dir / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        for split, pred in result.predictions.items():
            pred.to_parquet(folder / f"{split}.parquet", index=False)
            result.backtests[split].trades.to_parquet(folder / f"{split}_trades.parquet")
            returns_of(result.backtests[split].equity).to_frame().to_parquet(
                folder / f"{split}_returns.parquet")
        cv = result.cv
        if cv is not None:
            cv.oof.to_parquet(folder / "oof.parquet", index=False)
            cv.returns.to_frame().to_parquet(folder / "oof_returns.parquet")
            cv.folds.to_csv(result.out_dir / "folds.csv", index=False)
            if cv.paths is not None:
                cv.paths.to_csv(result.out_dir / "paths.csv", index=False)


class OOFStoreEntry:
    """A k-fold run's OOF and holdout predictions plus the fitted model, into the OOF store
    (``<cache>/oof/<phase1 key>/<model key>/``), for later ensembles over this model."""

    def write(self, result: RunResult) -> None:
        if result.cv is None:
            return
        cfg = result.cfg
        OOFStore(cfg.paths.cache_dir).store(
            result.key, model_key(cfg), result.metrics["info"]["model"],
            {"oof": result.cv.oof, **result.predictions},
            {"model_config": OmegaConf.to_container(cfg.model, resolve=True),
             "cv": result.cv.metrics}, result.predictor)


class ImportanceFile:
    """``feature_importance.csv``: the predictor's importance of its inputs, largest first
    (features for a model, base models for an ensemble)."""

    def write(self, result: RunResult) -> None:
        if result.importance is None:
            return
        result.importance.sort_values(ascending=False).to_csv(
            result.out_dir / "feature_importance.csv", header=["importance"])


class ReportTables:
    """``<name>.csv`` for each table the predictor reports (a torch model's ``history``, an
    ensemble's ``ensemble_report`` and diversity matrices)."""

    def write(self, result: RunResult) -> None:
        for name, table in result.tables.items():
            table.to_csv(result.out_dir / f"{name}.csv",
                          index=not isinstance(table.index, pd.RangeIndex))


class BundleArtifacts:
    """``bundle/``: everything needed to go from raw bars to probabilities (the predictor's
    native files, feature state, schema, label geometry, reference bins, a hashed manifest;
    :mod:`factory.bundle`)."""

    def write(self, result: RunResult) -> None:
        from factory.bundle.writer import write_bundle

        write_bundle(result, result.out_dir / "bundle")


class MetricsFile:
    """``metrics.json`` (with ``info.seconds``), ``config.yaml`` (resolved) and
    ``validation_report.json`` (Phase 1's report on the data)."""

    def write(self, result: RunResult) -> None:
        result.metrics["info"]["seconds"] = time.perf_counter() - result.started
        out = result.out_dir
        (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2, default=float))
        (out / "config.yaml").write_text(OmegaConf.to_yaml(result.cfg, resolve=True))
        (out / "validation_report.json").write_text(
            json.dumps(result.ds.info["report"], indent=2, default=str))
