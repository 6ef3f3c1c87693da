"""Every model in its CPU default configuration on the default dataset: fit seconds and
inference milliseconds per 1,000 samples (issue 5's table in docs/models.md).

Each model runs exactly as ``python run.py model=<name>`` would train it (its YAML defaults,
feature set and adapter; torch models with their early stopping), through
``ModelPredictor.fit`` on the cached default Phase-1 dataset. Inference is timed on the test
split's input (adapter output already built). Zero-shot models need weights this machine
cannot download; set ``FACTORY_BENCH_WEIGHTS_<NAME>=<dir>`` to time them, otherwise they are
listed as skipped. ``FACTORY_BENCH_MODELS=a,b`` restricts the list;
``FACTORY_BENCH_EPOCHS=n`` caps torch models' epochs (then read the s/epoch column).
Results are appended to ``outputs/bench/models.jsonl``.

Run: ``python -m pytest tests/benchmarks -m benchmark -s -k all_models``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.benchmarks.conftest import ROOT, table

pytestmark = pytest.mark.benchmark


def _models() -> list[str]:
    chosen = os.environ.get("FACTORY_BENCH_MODELS")
    names = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    return [n for n in names if not chosen or n in chosen.split(",")]


def test_fit_and_inference_per_model(tmp_path: Path):
    from omegaconf import OmegaConf

    from factory.config import build
    from factory.phase1 import load_or_build
    from factory.training.predictor import ModelPredictor, predict_output
    from tests.conftest import compose_config

    out = ROOT / "outputs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in _models():
        raw = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")
        extra = ["trainer.progress=false"]
        if "model" in raw and os.environ.get("FACTORY_BENCH_EPOCHS"):
            extra.append(f"trainer.max_epochs={os.environ['FACTORY_BENCH_EPOCHS']}")
        if "weights" in raw:
            weights = os.environ.get(f"FACTORY_BENCH_WEIGHTS_{name.upper()}")
            if not weights:
                rows.append([name, "foundation", "context", "-", "-", "-", "-",
                             "skipped: no weights"])
                continue
            extra.append(f"model.weights={weights}")
        cfg = compose_config(tmp_path, f"model={name}", *extra, tiny=False)
        ds, _, _ = load_or_build(cfg)
        model, adapter = build(cfg.model), build(cfg.adapter)
        result = ModelPredictor(model, adapter).fit(ds)
        x = adapter.transform(ds, ds.rows("test"))
        t0 = time.perf_counter()
        predict_output(model, x)
        infer_ms = (time.perf_counter() - t0) / len(x) * 1e6
        params = (sum(p.numel() for p in model.module_.parameters())
                  if hasattr(model, "module_") else None)
        epochs = len(model.history_) if hasattr(model, "history_") else None
        per_epoch = (round(sum(h["seconds"] for h in model.history_) / epochs, 2)
                     if epochs else None)
        record = {"model": name, "family": model.family, "input": adapter.kind,
                  "fit_seconds": round(result.fit_seconds_, 2), "infer_ms_per_1k":
                  round(infer_ms, 1), "params": params, "epochs": epochs, "s_per_epoch": per_epoch,
                  "n_train": len(ds.rows("train")), "load": os.getloadavg()[0]}
        with open(out / "models.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        rows.append([name, model.family, adapter.kind, f"{result.fit_seconds_:.1f}",
                     f"{infer_ms:.0f}", params or "-", epochs or "-", per_epoch or "-"])
    table("models on the default dataset (CPU defaults)",
          ["model", "family", "input", "fit s", "ms / 1k infer", "params", "epochs", "s/epoch"],
          rows)
    assert rows
