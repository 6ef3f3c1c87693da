"""Hydra callback: after a multirun or sweep, one table comparing every job's metrics.

Reads each job's ``metrics.json`` under the sweep directory, logs a table sorted by the
objective, and writes it as ``summary.csv`` beside the jobs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)
COLUMNS = ["f1_macro", "accuracy", "log_loss", "sharpe", "max_drawdown", "n_trades"]


def collect(sweep_dir: Path, objective: str = "val.f1_macro") -> pd.DataFrame:
    """One row per job directory holding a metrics.json, best objective first."""
    rows = []
    for path in sorted(Path(sweep_dir).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        row = {"job": path.parent.name, "model": metrics["info"]["model"],
               "horizon": metrics["info"]["horizon"]}
        for split in ("val", "test"):
            row.update({f"{split}.{k}": metrics[split].get(k) for k in COLUMNS})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame) and objective in frame:
        ascending = objective.endswith("log_loss")
        frame = frame.sort_values(objective, ascending=ascending, kind="stable")
    return frame


class MultirunSummary(Callback):
    """Registered in ``conf/config.yaml`` under ``hydra.callbacks``."""

    def __init__(self, objective: str = "val.f1_macro") -> None:
        self.objective = objective

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        frame = collect(sweep_dir, self.objective)
        if frame.empty:
            return
        frame.to_csv(sweep_dir / "summary.csv", index=False)
        text = frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")
        log.info("multirun summary (%d jobs, sorted by %s):\n%s\nwritten to %s", len(frame),
                 self.objective, text, sweep_dir / "summary.csv")
