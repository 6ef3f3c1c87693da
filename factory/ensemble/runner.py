"""Ensemble runs: base-model predictions (from the OOF store, or produced on the fly), the
combiner, and the base-vs-ensemble, diversity and ablation reports.

Each base model is run exactly as its own experiment would be: its conf/model YAML (with
its default feature set and adapter), on this run's data, labeling, cv, horizon and seed.

* ``stacking`` / ``voting``: the combiner is fitted on the base models' out-of-fold (OOF)
  probabilities of the Phase-1 *training* rows, and predicts the validation and test rows
  from the base models refitted on the whole training block. OOF comes from the run's ``cv``
  when it is a k-fold splitter, else from ``cv=purged_kfold`` with the same holdout cut.
* ``blending``: base models are fitted on the training rows before the last
  ``blend_fraction`` (per symbol, purged by label end), the combiner on their predictions for
  that block; validation and test come from the same base models.

Base models may use different feature sets, whose warm-ups differ by a few rows, so all
predictions are aligned on (symbol, bar) and the split of a row is this run's own Phase-1
split (the reference dataset, which also supplies the regime features).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from factory.adapters.base import labels_to_index
from factory.config import build
from factory.dataset import Dataset
from factory.ensemble.diversity import ablation, diversity_report
from factory.ensemble.spec import EnsembleSpec
from factory.errors import FactoryError
from factory.phase1 import load_or_build
from factory.training.cross_validation import cross_validate, inner_validation, oof_mean
from factory.training.oof_store import OOFStore, model_key
from factory.training.trainer import fit_predict, predict_frame

log = logging.getLogger(__name__)
CONF = Path(__file__).resolve().parents[2] / "conf"
PROBA = ["p_short", "p_flat", "p_long"]
SHARED = ("data", "labeling", "cv", "horizon", "seed", "cache", "paths", "trainer",
          "evaluation", "objective")


def base_config(cfg: DictConfig, name: str, overrides: list[str] = ()) -> DictConfig:
    """``cfg`` with ``model=name`` (and that model's default features and adapter), plus
    the base model's own ``overrides`` (``ensemble.base_overrides``)."""
    if not (CONF / "model" / f"{name}.yaml").is_file():
        raise FactoryError(f"`ensemble.base_models`: no conf/model/{name}.yaml")
    args = [f"model={name}", *overrides]
    if GlobalHydra.instance().is_initialized():
        base = compose(config_name="config", overrides=args)
    else:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            base = compose(config_name="config", overrides=args)
    raw = OmegaConf.to_container(cfg, resolve=False)
    with open_dict(base):
        for key in SHARED:
            if key in raw:
                base[key] = raw[key]
        base.paths = OmegaConf.to_container(cfg.paths, resolve=True)
        base.name = name
        base.ensemble = {"name": "none"}
    if not hasattr(build(base.cv), "split"):  # OOF needs folds: purged k-fold, same cut
        kfold = OmegaConf.load(CONF / "cv" / "purged_kfold.yaml")
        with open_dict(base):
            base.cv = OmegaConf.merge(kfold, {k: cfg.cv[k] for k in (
                "train", "val", "test", "purge_bars", "embargo_bars") if k in cfg.cv})
    return base


def _key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(["symbol", "bar_idx"])[PROBA]


def base_predictions(cfg: DictConfig, name: str, evaluator, blend_fraction: float | None,
                     overrides: list[str] = ()):
    """{oof|blend, val, test} prediction frames of one base model (cached in the OOF store)."""
    base = base_config(cfg, name, overrides)
    ds, key, _ = load_or_build(base)
    store = OOFStore(base.paths.cache_dir)
    mkey = model_key(base) + ("" if blend_fraction is None else f"-blend{blend_fraction}")
    if store.exists(key, mkey):
        log.info("ensemble base %s: predictions from the OOF store (%s/%s)", name, key, mkey)
        return store.load(key, mkey).frames
    make_model, make_adapter = (lambda: build(base.model)), (lambda: build(base.adapter))
    if blend_fraction is None:
        splitter = build(base.cv)
        res = cross_validate(make_model, make_adapter, ds, splitter,
                             lambda pred: evaluator.evaluate(pred, ds)[0],
                             float(base.cv.val) / float(base.cv.train + base.cv.val),
                             desc=f"oof {name}")
        result = fit_predict(make_model(), make_adapter(), ds)
        frames = {"oof": oof_mean(res.oof), **result.predictions}
    else:
        fit_rows, blend_rows = inner_validation(ds.meta, ds.rows("train"), blend_fraction,
                                                int(base.cv.purge_bars))
        model, adapter = make_model(), make_adapter()
        adapter.fit(ds, fit_rows, model)
        model.fit(adapter.transform(ds, fit_rows), adapter.transform(ds, ds.rows("val")))
        frames = {"blend": predict_frame(model, adapter, ds, blend_rows),
                  **{s: predict_frame(model, adapter, ds, ds.rows(s)) for s in ("val", "test")}}
    store.store(key, mkey, name, frames, {"model_config": OmegaConf.to_container(
        base.model, resolve=True)})
    return frames


def align(ds: Dataset, frames: dict[str, pd.DataFrame], source: str,
          split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference rows of ``split`` predicted by every base model, and P (n, m, 3)."""
    ref = ds.meta.iloc[ds.rows(split)].set_index(["symbol", "bar_idx"])
    index = ref.index
    for frame in frames.values():
        index = index.intersection(_key_frame(frame[source]).index, sort=False)
    if len(index) == 0:
        raise FactoryError(f"ensemble: no {split} row is predicted by every base model")
    rows = ds.rows(split)[ref.index.get_indexer(index)]
    order = np.argsort(rows)
    rows, index = rows[order], index[order]
    P = np.stack([_key_frame(f[source]).loc[index].to_numpy() for f in frames.values()], 1)
    return rows, P


def run_ensemble(cfg: DictConfig, ds: Dataset, evaluator) -> dict:
    """Fit the combiner; return predictions per split, reports and the fitted combiner."""
    spec: EnsembleSpec = build(cfg.ensemble)
    blend = spec.blend_fraction if spec.method == "blending" else None
    frames = {n: base_predictions(cfg, n, evaluator, blend, spec.base_overrides.get(n, []))
              for n in spec.base_models}
    source = "blend" if blend is not None else "oof"
    fit_split = "train"
    rows, P = align(ds, {n: f for n, f in frames.items()}, source, fit_split)
    y = labels_to_index(ds.meta["label"].to_numpy()[rows])
    w = ds.meta["weight"].to_numpy()[rows]
    R = spec.select_regimes(ds.X.iloc[rows]) if spec.needs_regimes else None
    combiner = spec.make_combiner().fit(P, y, sample_weight=w, R=R)
    out = {"predictions": {}, "base": {}, "combiner": combiner, "spec": spec,
           "n_fit_rows": len(rows)}
    extra = ["side"] if "side" in ds.meta else []
    for split in ("val", "test"):
        r, Ps = align(ds, frames, split, split)
        Rs = spec.select_regimes(ds.X.iloc[r]) if spec.needs_regimes else None
        meta = ds.meta.iloc[r][["timestamp", "symbol", "bar_idx", "exit_idx", "t1", "label",
                                 "ret_long", "ret_short", "cost", *extra]].reset_index(drop=True)
        pred = meta.copy()
        pred[PROBA] = combiner.predict_proba(Ps, R=Rs)
        out["predictions"][split] = pred
        for k, name in enumerate(spec.base_models):
            base_pred = meta.copy()
            base_pred[PROBA] = Ps[:, k]
            out["base"].setdefault(name, {})[split] = base_pred
        if split == "test":
            ys = labels_to_index(meta["label"].to_numpy())
            out["diversity"] = diversity_report(Ps, ys, spec.base_models)
            out["ablation"] = ablation(spec.make_combiner, P, y, spec.base_models,
                                       sample_weight=w, R=R, P_eval=Ps, y_eval=ys, R_eval=Rs)
    return out
