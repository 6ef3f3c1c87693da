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
from factory.ensemble.runner import run_ensemble
from factory.errors import FactoryError
from factory.evaluation.regime_report import regime_table
from factory.models.artifacts import save_model
from factory.phase1 import load_or_build
from factory.training.cross_validation import returns_of, run_cross_validation
from factory.training.oof_store import OOFStore, model_key
from factory.training.trainer import fit_predict

log = logging.getLogger(__name__)
SUMMARY_KEYS = ["accuracy", "f1_macro", "log_loss", "sharpe", "oracle_sharpe", "sortino",
                "max_drawdown", "win_rate", "profit_factor", "n_trades"]


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


def evaluate_splits(evaluator, ds, predictions: dict[str, pd.DataFrame],
                    out_dir: Path) -> tuple[dict, dict]:
    """Metrics and backtest per split; writes predictions, trades and per-bar returns."""
    metrics, backtests = {}, {}
    for split, pred in predictions.items():
        metrics[split], backtests[split] = evaluator.evaluate(pred, ds)
        metrics[split].update(evaluator.split_report(pred, ds, backtests[split], split))
        pred.to_parquet(out_dir / "predictions" / f"{split}.parquet", index=False)
        backtests[split].trades.to_parquet(out_dir / "predictions" / f"{split}_trades.parquet")
        returns_of(backtests[split].equity).to_frame().to_parquet(
            out_dir / "predictions" / f"{split}_returns.parquet")
    return metrics, backtests


def run(cfg: DictConfig) -> float:
    """Run one experiment (a model, or an ensemble of models); return the objective value."""
    validate(cfg)
    started = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    ctx = _hydra_context()
    evaluator = build(cfg.evaluation)
    if "_target_" in cfg.ensemble:
        return _run_ensemble(cfg, evaluator, out_dir, ctx, started)
    model = build(cfg.model)
    adapter = build(cfg.adapter)
    check_compatible(adapter.kind, model)  # fail before Phase 1, not after it
    ds, key, hit = load_or_build(cfg)
    model_name = ctx.get("model") or type(model).__name__
    cv_metrics, oof = None, None
    if hasattr(build(cfg.cv), "split"):  # k-fold cv: out-of-fold predictions first
        cv_metrics, oof = run_cross_validation(cfg, ds, evaluator, out_dir)
    result = fit_predict(model, adapter, ds)
    metrics, backtests = evaluate_splits(evaluator, ds, result.predictions, out_dir)
    if cv_metrics is not None:
        metrics["cv"] = cv_metrics
        OOFStore(cfg.paths.cache_dir).store(
            key, model_key(cfg), model_name, {"oof": oof, **result.predictions},
            {"model_config": OmegaConf.to_container(cfg.model, resolve=True), "cv": cv_metrics})

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
    }
    return _finish(cfg, ds, evaluator, out_dir, metrics, result.predictions, backtests,
                   importance, model_name, [model_name, model.family], ctx, started)


def _finish(cfg, ds, evaluator, out_dir: Path, metrics: dict, predictions: dict,
            backtests: dict, importance, name: str, tags: list[str], ctx: dict,
            started: float) -> float:
    """Shared tail of every run: metrics.json, config, report, plots, tracker, summary."""
    metrics["info"]["seconds"] = time.perf_counter() - started
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (out_dir / "validation_report.json").write_text(json.dumps(ds.info["report"], indent=2,
                                                           default=str))
    title = f"{cfg.get('name') or name} (horizon {ds.horizon})"
    plot_paths = evaluator.write_plots(out_dir / "plots", predictions, backtests, importance,
                                       title, ds=ds)
    tracker = build(cfg.tracker)
    tracker.start(out_dir, OmegaConf.to_container(cfg, resolve=True), name=title,
                  tags=[*tags, f"h{ds.horizon}"], group=ctx.get("group"))
    tracker.log_metrics({k: v for k, v in metrics.items() if k in ("val", "test")})
    tracker.log_images(plot_paths)
    tracker.finish()
    log.info("%s", summary_table(metrics, title))
    log.info("by regime:\n%s", regime_table(metrics))
    log.info("run directory: %s", out_dir)
    return objective_value(metrics, str(cfg.objective))


def _run_ensemble(cfg, evaluator, out_dir: Path, ctx: dict, started: float) -> float:
    """Base models (cached OOF or produced now) -> combiner -> the standard outputs plus the
    base-vs-ensemble table, diversity matrices and ablation."""
    ds, key, hit = load_or_build(cfg)  # the reference dataset: splits and regime features
    res = run_ensemble(cfg, ds, evaluator)
    spec = res["spec"]
    metrics, backtests = evaluate_splits(evaluator, ds, res["predictions"], out_dir)
    table = {"ensemble": {f"{s}.{k}": metrics[s].get(k) for s in ("val", "test")
                          for k in SUMMARY_KEYS}}
    for name, preds in res["base"].items():
        base = {s: evaluator.evaluate(p, ds)[0] for s, p in preds.items()}
        table[name] = {f"{s}.{k}": base[s].get(k) for s in ("val", "test") for k in SUMMARY_KEYS}
    report = pd.DataFrame(table).T
    report.index.name = "model"
    report.to_csv(out_dir / "ensemble_report.csv")
    pd.DataFrame(res["diversity"]["correlation"]).to_csv(out_dir / "diversity_correlation.csv")
    pd.DataFrame(res["diversity"]["disagreement"]).to_csv(out_dir / "diversity_disagreement.csv")
    (out_dir / "model").mkdir(exist_ok=True)
    (out_dir / "model" / "ensemble.json").write_text(json.dumps(
        {"method": spec.method, "base_models": spec.base_models, "phase1_key": key,
         "combiner": res["combiner"].state()}, indent=2, default=float))
    describe = res["combiner"].describe(spec.base_models)
    metrics["ensemble"] = {"method": spec.method, "meta_learner": spec.meta_learner
                           if spec.method != "voting" else spec.voting,
                           "base_models": spec.base_models, "n_fit_rows": res["n_fit_rows"],
                           "combiner": describe, "ablation": res["ablation"],
                           "diversity": res["diversity"], "base": table}
    metrics["info"] = {"model": spec.name, "family": "ensemble", "horizon": ds.horizon,
                       "phase1_key": key, "phase1_cache_hit": hit, "n_train": res["n_fit_rows"]}
    cols = [c for c in report.columns if c.split(".")[1] in ("f1_macro", "log_loss", "sharpe")]
    log.info("base models vs %s (%s):\n%s", spec.name, metrics["ensemble"]["meta_learner"],
             report[cols].to_string(float_format=lambda v: f"{v:.4f}"))
    weights = pd.Series(describe["weights"], dtype=float)
    return _finish(cfg, ds, evaluator, out_dir, metrics, res["predictions"], backtests,
                   weights.abs(), spec.name, [spec.name, "ensemble"], ctx, started)
