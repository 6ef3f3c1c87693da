"""``plots/``: equity curves, confusion matrices and importance (drawn by the evaluator,
which owns the ``evaluation.plots`` switch)."""

from __future__ import annotations

from factory.outputs.base import RunResult


class Plots:
    """Writes the evaluator's plots; their paths go to ``result.plots`` for the tracker."""

    def write(self, result: RunResult) -> None:
        result.plots = result.evaluator.write_plots(
            result.out_dir / "plots", result.predictions, result.backtests, result.importance,
            result.title, ds=result.ds)
