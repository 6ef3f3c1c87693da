"""The result of a run, as every output sees it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from factory.dataset import Dataset
from factory.training.cross_validation import CVResult


@dataclass
class RunResult:
    """Everything a run produced (see :func:`factory.experiment.run`).

    ``metrics`` is what ``metrics.json`` holds: ``val``/``test`` metrics, ``info`` (one shape
    for every run: :data:`factory.training.predictor.INFO_KEYS` plus horizon, Phase-1 key,
    cache hit and seconds) and any blocks the predictor or cross-validation add (``cv``,
    ``ensemble``). ``tables`` are the predictor's extra reports (name -> frame).
    """

    cfg: DictConfig
    out_dir: Path
    ds: Dataset
    evaluator: object
    predictor: object
    predictions: dict[str, pd.DataFrame]
    backtests: dict[str, object]
    metrics: dict
    importance: pd.Series | None
    tables: dict[str, pd.DataFrame]
    cv: CVResult | None
    title: str
    tags: list[str]
    group: str | None
    started: float = field(default_factory=time.perf_counter)
    plots: list[Path] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.metrics["info"]["phase1_key"])
