"""The one orchestration function: config in, run directory and objective out.

``run(cfg)`` does Phase 1 (cached), fits the model through its adapter, evaluates the
validation and test splits, writes the run directory, mirrors it to the tracker, logs a
summary table and returns the objective named by ``cfg.objective`` (for sweeps).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.adapters.base import check_compatible
from factory.config import build, validate
from factory.errors import FactoryError
from factory.models.artifacts import save_model
from factory.phase1 import load_or_build
from factory.training.trainer import fit_predict

log = logging.getLogger(__name__)
SUMMARY_KEYS = ["accuracy", "f1_macro", "log_loss", "sharpe", "sortino", "max_drawdown",
                "win_rate", "profit_factor", "n_trades"]


def _hydra_context() -> dict:
    """Model choice and multirun group from Hydra, when running under it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    ctx = {"model": hc.runtime.choices.get("model")}
    if hc.mode == RunMode.MULTIRUN:
        study = OmegaConf.select(hc, "sweeper.study_name", default=None)
        ctx["group"] = study or "/".join(Path(hc.sweep.dir).parts[-2:])
    return ctx


def summary_table(metrics: dict, title: str) -> str:
    rows = [(k, metrics["val"].get(k), metrics["test"].get(k)) for k in SUMMARY_KEYS]
    frame = pd.DataFrame(rows, columns=["metric", "val", "test"]).set_index("metric")
    body = frame.map(lambda v: "-" if v is None or v != v else
                     (f"{int(v)}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.4f}")
                     ).to_string()
    rule = "-" * max(len(line) for line in body.splitlines())
    return f"\n{title}\n{rule}\n{body}\n{rule}"


def objective_value(metrics: dict, objective: str) -> float:
    split, name = objective.split(".")
    if name not in metrics[split]:
        raise FactoryError(
            f"`objective={objective}` names no metric; available: {sorted(metrics[split])}"
        )
    value = metrics[split][name]
    return float("nan") if value is None else float(value)


def run(cfg: DictConfig) -> float:
    """Run one experiment; return the objective value."""
    validate(cfg)
    started = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = _hydra_context()
    model = build(cfg.model)
    adapter = build(cfg.adapter)
    check_compatible(adapter.kind, model)  # fail before Phase 1, not after it
    evaluator = build(cfg.evaluation)
    ds, key, hit = load_or_build(cfg)
    model_name = ctx.get("model") or type(model).__name__
    result = fit_predict(model, adapter, ds)

    metrics, backtests = {}, {}
    (out_dir / "predictions").mkdir(exist_ok=True)
    for split, pred in result.predictions.items():
        metrics[split], backtests[split] = evaluator.evaluate(pred, ds)
        pred.to_parquet(out_dir / "predictions" / f"{split}.parquet", index=False)
        backtests[split].trades.to_parquet(out_dir / "predictions" / f"{split}_trades.parquet")

    importance = model.feature_importance()
    if importance is None:
        importance = evaluator.permutation_importance(model, adapter, ds, ds.rows("val"))
    importance = pd.Series(np.asarray(importance, float), index=adapter.feature_names_)
    importance.sort_values(ascending=False).to_csv(out_dir / "feature_importance.csv",
                                                   header=["importance"])
    history = getattr(model, "history_", None)
    if history:  # torch models: per-epoch metrics of the shared trainer
        pd.DataFrame(history).to_csv(out_dir / "history.csv", index=False)
    save_model(model, out_dir / "model", adapter.feature_names_,
               extra={"phase1_key": key, "horizon": ds.horizon}, adapter_state=adapter.state())

    metrics["info"] = {
        "model": model_name, "family": model.family, "horizon": ds.horizon,
        "phase1_key": key, "phase1_cache_hit": hit, "fit_seconds": result.fit_seconds,
        "n_features": len(adapter.feature_names_), "n_train": int(len(ds.rows("train"))),
        "adapter": adapter.kind, "rows_without_window": getattr(adapter, "dropped_", {}),
        "epochs": len(history) if history else None,
        "seconds": time.perf_counter() - started,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (out_dir / "validation_report.json").write_text(json.dumps(ds.info["report"], indent=2,
                                                           default=str))
    title = f"{cfg.get('name') or model_name} (horizon {ds.horizon})"
    plot_paths = evaluator.write_plots(out_dir / "plots", result.predictions, backtests,
                                       importance, title)

    tracker = build(cfg.tracker)
    tracker.start(out_dir, OmegaConf.to_container(cfg, resolve=True), name=title,
                  tags=[model_name, model.family, f"h{ds.horizon}"], group=ctx.get("group"))
    tracker.log_metrics({k: v for k, v in metrics.items() if k in ("val", "test")})
    tracker.log_images(plot_paths)
    tracker.finish()

    log.info("%s", summary_table(metrics, title))
    log.info("run directory: %s", out_dir)
    return objective_value(metrics, str(cfg.objective))
