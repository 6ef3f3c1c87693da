"""The replay's plan (where decisions start, where segments are cut) and walk-forward refits.

* **Start** (``sim.replay_from``): ``after_training`` skips, per symbol, every bar up to the
  bundle's last training bar plus one label horizon (the bars its training labels looked
  at), so nothing the model was fitted on is traded; ``after_validation`` starts at the
  run's test block (the validation rows steered early stopping); null trades every bar
  after the warm-up (in-sample where the bars overlap training: logged as a warning); a
  stamp starts there. The bars before the start warm the streamers and the engine up.
* **Segments**: with ``sim.retrain_every = n``, the replay is cut at the open of every n-th
  session after the start (sessions: a pause of ``session_gap_minutes`` between bars), so a
  cut never falls inside a session.
* **Refit** at a cut: the bundle's own training config (the run's ``config.yaml`` beside the
  bundle), with ``data`` set to the replay's data cut to the trailing window
  ``[cut - retrain_window sessions, cut)`` (:class:`factory.simulation.window.WindowSource`),
  goes through :func:`factory.experiment.run`: Phase 1 (features, labels, splits, fitted
  feature state), the predictor's fit, evaluation and the bundle, nothing else. Labels need
  their whole horizon inside the window, so the last ``horizon`` bars before the cut are
  unlabelled: no training label reaches past the cut (purged by construction), and the
  holdout split inside the window purges and embargoes as in training.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.bundle.reader import Bundle
from factory.data.bars import BarSet
from factory.errors import FactoryError
from factory.reports.metrics import sessions

log = logging.getLogger(__name__)
WINDOW = "factory.simulation.window.WindowSource"
REFIT_OUTPUTS = {"bundle": {"_target_": "factory.outputs.files.BundleArtifacts"},
                 "metrics": {"_target_": "factory.outputs.files.MetricsFile"}}


def training_config(bundle: Bundle, required: bool) -> DictConfig | None:
    """The config the bundle was trained with: ``config.yaml`` of its run directory."""
    places = [bundle.path.parent / "config.yaml"]
    if bundle.manifest.get("run"):
        places.append(Path(bundle.manifest["run"]) / "config.yaml")
    for path in places:
        if path.is_file():
            return OmegaConf.load(path)
    if required:
        raise FactoryError(f"`sim.retrain_every` refits the bundle with the config it was "
                           f"trained with, but no config.yaml was found at "
                           f"{' or '.join(str(p) for p in places)}; simulate the bundle inside "
                           f"its run directory, or set `sim.retrain_every=null`")
    return None


def _union(barset: BarSet) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.unique(np.concatenate(
        [b.index.as_unit("ns").asi8 for b in barset.bars.values()])).view("M8[ns]")
                            ).tz_localize("UTC")


def replay_start(rule, bundle: Bundle, barset: BarSet) -> pd.Timestamp:
    """The first decision stamp for ``sim.replay_from`` (see the module docstring)."""
    ready = {s: b.index[min(bundle.warmup() + 1, len(b) - 1)] for s, b in barset.bars.items()}
    training = bundle.schema.get("training", {})
    horizon = int(bundle.labeling["horizon"])
    if rule == "after_training":
        starts = {}
        for sym, bars in barset.bars.items():
            last = training.get(sym, {}).get("last")
            seen = 0 if last is None else int(bars.index.searchsorted(pd.Timestamp(last),
                                                                       side="right"))
            first = seen + horizon if seen else 0
            if first >= len(bars):
                raise FactoryError(
                    f"{sym}: the bars end at {bars.index[-1]}, within the bundle's training "
                    f"data (through {last}) plus one horizon ({horizon} bars): nothing out of "
                    f"sample to simulate; pass later bars (e.g. `data=csv data.path=...`, or "
                    f"more `data.days`), or `sim.replay_from=null` to replay the training bars too")
            starts[sym] = max(bars.index[first], ready[sym])
        return max(starts.values())
    if rule == "after_validation":
        return _test_block(bundle, barset, ready)
    start = min(ready.values()) if rule is None else pd.Timestamp(rule)
    inside = [s for s, t in training.items() if s in barset.bars and
              start <= pd.Timestamp(t["last"])]
    if inside:
        log.warning("the replay starts at %s, inside the bundle's training data of %s: those "
                    "decisions are in-sample (`sim.replay_from=after_training` skips them)", start,
                    ", ".join(inside))
    return start


def _test_block(bundle: Bundle, barset: BarSet, ready: dict) -> pd.Timestamp:
    """The first stamp of the run's test block (its predictions, kept in the bundle): past
    the validation rows that early stopping (and a sweep's choice) looked at."""
    path = bundle.path / "predictions_test.parquet"
    if not path.is_file():
        raise FactoryError(f"`sim.replay_from=after_validation` reads the run's test block from "
                           f"{path}, which is missing; use after_training or a UTC time")
    first = pd.read_parquet(path, columns=["timestamp", "symbol"]).groupby("symbol")[
        "timestamp"].min()
    starts = [max(pd.Timestamp(first[s]), ready[s]) for s in barset.bars if s in first]
    if not starts:
        raise FactoryError(f"{path} holds none of the symbols {barset.symbols}")
    return max(starts)


def segment_cuts(barset: BarSet, start: pd.Timestamp, every: int | None,
                 gap_minutes: float) -> list[tuple[pd.Timestamp, pd.Timestamp | None]]:
    """``[(segment start, segment end or None)]``: the replay cut at every ``every``-th
    session open after ``start`` (one segment without ``every``)."""
    stamps = _union(barset)
    stamps = stamps[stamps >= start]
    if len(stamps) == 0:
        raise FactoryError(f"no bars at or after the replay start {start}")
    if not every:
        return [(start, None)]
    sid = sessions(stamps, gap_minutes, barset.timeframe)
    opens = stamps[np.r_[False, sid[1:] != sid[:-1]]]  # session opens after the start's
    cuts = list(opens[every - 1::every])
    bounds = [start, *cuts]
    return [(a, b) for a, b in zip(bounds, [*cuts, None], strict=True)]


def window_start(barset: BarSet, cut: pd.Timestamp, sessions_back: int | None,
                 gap_minutes: float) -> pd.Timestamp | None:
    """The open of the session ``sessions_back`` sessions before ``cut`` (None: all bars)."""
    if sessions_back is None:
        return None
    stamps = _union(barset)
    stamps = stamps[stamps < cut]
    sid = sessions(stamps, gap_minutes, barset.timeframe)
    opens = stamps[np.r_[True, sid[1:] != sid[:-1]]]
    return opens[max(len(opens) - sessions_back, 0)]


def _set(cfg: DictConfig, key: str, value) -> None:
    if OmegaConf.select(cfg, key, default="<absent>") == "<absent>":
        raise FactoryError(f"`sim.retrain_overrides`: the training config has no key {key!r} "
                           f"(keys are dotted paths such as cv.embargo_bars)")
    OmegaConf.update(cfg, key, value, merge=False)


def refit_config(train_cfg: DictConfig, data: dict, start, cut, out_dir: Path,
                 cache_dir: str, overrides: dict) -> DictConfig:
    """The training config of one refit (see the module docstring)."""
    cfg = copy.deepcopy(train_cfg)
    window = {"_target_": WINDOW, "source": data, "start": None if start is None else str(start),
              "end": str(cut)}
    OmegaConf.set_struct(cfg, False)
    cfg.data = window
    cfg.paths.output_dir, cfg.paths.cache_dir = str(out_dir), str(cache_dir)
    cfg.outputs = copy.deepcopy(REFIT_OUTPUTS)
    for base in (OmegaConf.select(cfg, "ensemble.bases") or {}).values():
        base.data = window  # an ensemble's base models run their own Phase 1 on the window
        base.paths.cache_dir = str(cache_dir)
    for key, value in overrides.items():
        _set(cfg, str(key), value)
    return cfg


def refit(train_cfg: DictConfig, data: dict, start, cut, out_dir: Path, cache_dir: str,
          overrides: dict, trusted_modules=(), allow_version_mismatch: bool = False) -> Bundle:
    """Train on ``[start, cut)`` through the training pipeline; the new bundle, loaded."""
    from factory.experiment import run

    t0 = time.perf_counter()
    cfg = refit_config(train_cfg, data, start, cut, out_dir, cache_dir, overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    run(cfg)
    bundle = Bundle.load(out_dir / "bundle", trusted_modules, allow_version_mismatch)
    log.info("refit %s on [%s, %s) in %.1fs -> %s", bundle.name, start or "start", cut,
             time.perf_counter() - t0, out_dir / "bundle")
    return bundle
