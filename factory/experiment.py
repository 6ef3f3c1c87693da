"""The one orchestration function: config in, run directory and objective out.

``run(cfg)`` is linear and the same for every run: build the predictor (a model through its
adapter, or an ensemble: ``conf/ensemble``) and the outputs; Phase 1 (cached); out-of-fold
evaluation when ``cv`` is a k-fold splitter; fit; predict and evaluate the validation and test
splits; hand the result to each configured output (``conf/outputs``: prediction files, the
OOF store, importance, reports, the model, metrics.json, plots, the tracker, the summary
table); return the objective named by ``cfg.objective`` (for sweeps).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from factory.config import build, validate
from factory.errors import FactoryError
from factory.outputs.base import RunResult
from factory.phase1 import load_or_build
from factory.training.cross_validation import is_kfold

log = logging.getLogger(__name__)
SPLITS = ("val", "test")


def _hydra_group() -> str | None:
    """The multirun group (study name, or the sweep directory) when running under Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hc = HydraConfig.get()
    study = OmegaConf.select(hc, "sweeper.study_name", default=None)
    return study or "/".join(Path(hc.sweep.dir).parts[-2:])


def objective_value(metrics: dict, objective: str) -> float:
    split, name = objective.split(".")
    if name not in metrics[split]:
        raise FactoryError(
            f"`objective={objective}` names no metric; available: {sorted(metrics[split])}"
        )
    value = metrics[split][name]
    return float("nan") if value is None else float(value)


def run(cfg: DictConfig) -> float:
    """Run one experiment (a model, or an ensemble of models); return the objective value."""
    validate(cfg)
    started = time.perf_counter()
    evaluator = build(cfg.evaluation)
    predictor = build(cfg.ensemble)
    predictor.check()  # fail before Phase 1, not after it
    outputs = [build(node) for node in cfg.outputs.values()]
    splitter = build(cfg.cv)
    ds, key, hit = load_or_build(cfg)
    evaluator.check_labels(ds)  # one class, or a class too rare to learn: stop before fitting
    cv = predictor.cross_validate(ds, splitter, evaluator) if is_kfold(splitter) else None
    predictor.fit(ds)
    predictions = {s: predictor.predict(ds, ds.rows(s)) for s in SPLITS}
    evaluated = {s: evaluator.evaluate(pred, ds) for s, pred in predictions.items()}
    metrics: dict = {s: {**evaluated[s][0], **evaluator.split_report(
        predictions[s], ds, evaluated[s][1], s)} for s in SPLITS}
    if cv is not None:
        metrics["cv"] = cv.metrics
    tables, blocks = predictor.reports(ds, evaluator, predictions)
    metrics.update(blocks)
    info = predictor.describe()
    metrics["info"] = {**info, "horizon": ds.horizon, "phase1_key": key,
                       "phase1_cache_hit": hit}
    title = f"{cfg.get('name') or info['model']} (horizon {ds.horizon})"
    result = RunResult(
        cfg=cfg, out_dir=Path(cfg.paths.output_dir), ds=ds, evaluator=evaluator,
        predictor=predictor, predictions=predictions,
        backtests={s: evaluated[s][1] for s in SPLITS}, metrics=metrics,
        importance=predictor.importance(ds, evaluator), tables=tables, cv=cv, title=title,
        tags=[info["model"], info["family"], f"h{ds.horizon}"], group=_hydra_group(),
        started=started)
    result.out_dir.mkdir(parents=True, exist_ok=True)
    for output in outputs:
        output.write(result)
    return objective_value(metrics, str(cfg.objective))
