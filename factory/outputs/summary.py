"""The summary table logged at the end of every run (validation and test side by side).

The Sharpe ratio is shown with its standard error (``sharpe_se``: Lo 2002 with serial
correlation). A value that rests on fewer trades than ``evaluation.min_trades`` or fewer rows
than ``evaluation.min_rows`` carries a ``*`` (the split's ``marks`` in metrics.json), and the
reasons, and why a split has no trade, are listed under the table.
"""

from __future__ import annotations

import logging

import pandas as pd

from factory.evaluation.evaluator import SUMMARY_KEYS
from factory.evaluation.regime_report import regime_table
from factory.outputs.base import RunResult

log = logging.getLogger("factory.experiment")
SPLITS = ("val", "test")


def format_value(key: str, value) -> str:
    """Counts as integers, everything else with four decimals; missing values as '-'."""
    if value is None or value != value:
        return "-"
    if key.startswith("n_"):
        return f"{int(value)}"
    return f"{value:.4f}"


def _cell(key: str, split_metrics: dict) -> str:
    text = format_value(key, split_metrics.get(key))
    se = split_metrics.get("sharpe_se")
    if key == "sharpe" and text != "-" and se is not None and se == se:
        text = f"{text} ± {se:.2f}"
    if key in (split_metrics.get("marks") or {}):
        text += " *"
    return text


def summary_table(metrics: dict, title: str) -> str:
    rows = {k: [_cell(k, metrics[s]) for s in SPLITS] for k in SUMMARY_KEYS}
    body = pd.DataFrame(rows, index=list(SPLITS)).T.rename_axis("metric").to_string()
    rule = "-" * max(len(line) for line in body.splitlines())
    notes = []
    for split in SPLITS:
        reasons = sorted(set((metrics[split].get("marks") or {}).values()))
        notes += [f"* {split}: {reason}" for reason in reasons]
        if metrics[split].get("no_trades_reason"):
            notes.append(f"{split}: no trades: {metrics[split]['no_trades_reason']}")
    tail = "\n" + "\n".join(notes) if notes else ""
    return f"\n{title}\n{rule}\n{body}\n{rule}{tail}"


class SummaryLog:
    """Logs the summary table and where the run directory is."""

    def write(self, result: RunResult) -> None:
        log.info("%s", summary_table(result.metrics, result.title))
        log.info("by regime:\n%s", regime_table(result.metrics))
        log.info("run directory: %s", result.out_dir)
