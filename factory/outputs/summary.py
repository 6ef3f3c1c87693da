"""The summary table logged at the end of every run (validation and test side by side)."""

from __future__ import annotations

import logging

import pandas as pd

from factory.evaluation.evaluator import SUMMARY_KEYS
from factory.evaluation.regime_report import regime_table
from factory.outputs.base import RunResult

log = logging.getLogger("factory.experiment")


def format_value(key: str, value) -> str:
    """Counts as integers, everything else with four decimals; missing values as '-'."""
    if value is None or value != value:
        return "-"
    if key.startswith("n_"):
        return f"{int(value)}"
    return f"{value:.4f}"


def summary_table(metrics: dict, title: str) -> str:
    rows = {k: [format_value(k, metrics[s].get(k)) for s in ("val", "test")]
            for k in SUMMARY_KEYS}
    body = pd.DataFrame(rows, index=["val", "test"]).T.rename_axis("metric").to_string()
    rule = "-" * max(len(line) for line in body.splitlines())
    return f"\n{title}\n{rule}\n{body}\n{rule}"


class SummaryLog:
    """Logs the summary table and where the run directory is."""

    def write(self, result: RunResult) -> None:
        log.info("%s", summary_table(result.metrics, result.title))
        log.info("by regime:\n%s", regime_table(result.metrics))
        log.info("run directory: %s", result.out_dir)
