"""The model comparison report of a multirun: ``model_comparison.md`` (+ ``.csv``, ``.png``).

Built from the job directories alone (``metrics.json``, ``predictions/val.parquet``,
``predictions/val_returns.parquet``), so it works for any launcher and can be rebuilt
later with :func:`write_comparison`. The report answers "which model wins at which
horizon, do the models agree, and how much of the winner is selection luck":

* a models x horizons table of the objective, the test Sharpe and the test macro F1 (a
  model swept over several jobs at one horizon shows its best job by the objective);
* the best model per horizon;
* per horizon, the correlation of the models' validation views ``p_long - p_short`` on the
  validation rows every model predicts (the diversity measure of the ensembles);
* PBO and the deflated Sharpe of the selection, over all jobs and per horizon;
* failed jobs with their error line; one plot: the objective by horizon per model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
TABLE_METRICS = {"objective": "Objective", "test.sharpe": "Test Sharpe",
                 "test.f1_macro": "Test F1 (macro)"}


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(frame: pd.DataFrame, index_name: str | None = None) -> str:
    """A GitHub markdown table (no tabulate dependency); floats with 4 decimals."""
    frame = frame.copy()
    head = [index_name or frame.index.name or ""] + [str(c) for c in frame.columns]
    rows = [[str(i)] + [_fmt(v) for v in row] for i, row in zip(frame.index, frame.values,
                                                                  strict=True)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def best_per_model_horizon(frame: pd.DataFrame, objective: str) -> pd.DataFrame:
    """One row per (model, horizon): its best job by the objective, with the job count."""
    ascending = objective.endswith("log_loss")
    ranked = frame.sort_values(objective, ascending=ascending, kind="stable", na_position="last")
    best = ranked.groupby(["model", "horizon"], sort=True).head(1).copy()
    best["n_jobs"] = best.apply(lambda r: int(((frame["model"] == r["model"])
                                               & (frame["horizon"] == r["horizon"])).sum()),
                                axis=1)
    best["objective"] = best[objective]
    return best.set_index(["model", "horizon"]).sort_index()


def validation_views(sweep_dir: Path, jobs: list[str]) -> pd.DataFrame:
    """``p_long - p_short`` on validation rows, one column per job, rows every job predicts."""
    views = {}
    for job in jobs:
        path = Path(sweep_dir) / job / "predictions" / "val.parquet"
        if not path.is_file():
            continue
        pred = pd.read_parquet(path, columns=["timestamp", "symbol", "p_long", "p_short"])
        views[job] = (pred["p_long"] - pred["p_short"]).set_axis(
            pd.MultiIndex.from_frame(pred[["timestamp", "symbol"]]))
    if not views:
        return pd.DataFrame()
    return pd.DataFrame(views).dropna()


def correlation_by_horizon(sweep_dir: Path, best: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Per horizon with >= 2 models: the Pearson correlation of their validation views."""
    out = {}
    for horizon, rows in best.reset_index().groupby("horizon"):
        if len(rows) < 2:
            continue
        views = validation_views(sweep_dir, rows["job"].tolist())
        if views.shape[1] < 2:
            continue
        names = dict(zip(rows["job"], rows["model"], strict=True))
        corr = views.rename(columns=names).corr()
        corr.attrs["n_rows"] = len(views)
        out[int(horizon)] = corr
    return out


def plot_objective(best: pd.DataFrame, objective: str, path: Path) -> Path:
    """Objective by horizon, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    table = best["objective"].unstack("horizon")
    for model, row in table.iterrows():
        ax.plot(row.index.astype(int), row.to_numpy(float), marker="o", label=str(model))
    ax.set_xlabel("horizon (bars)")
    ax.set_ylabel(objective)
    ax.set_xticks(sorted(table.columns.astype(int)))
    ax.set_title(f"{objective} by horizon")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _overfitting_lines(stats: dict) -> list[str]:
    if not stats:
        return ["- not computed (fewer than 2 jobs with validation returns)"]
    lines = []
    if "pbo" in stats:
        lines.append(f"- PBO: {stats['pbo']:.3f} ({stats['n_strategies']} jobs, "
                     f"{stats['pbo_partitions']} partitions of {stats['n_obs']} "
                     f"{stats['returns']} bars)")
    else:
        lines.append(f"- PBO: n/a ({stats.get('pbo_undefined', 'too few bars')})")
    dsr = stats.get("deflated_sharpe")
    if dsr is None:
        lines.append(f"- deflated Sharpe: undefined ({stats.get('deflated_sharpe_undefined')})")
    else:
        lines.append(f"- deflated Sharpe of {stats['best_job']}: {dsr:.3f} "
                     f"(probability that its Sharpe beats the best of {stats['n_strategies']} "
                     "lucky trials)")
    return lines


def build_report(sweep_dir: Path, frame: pd.DataFrame, failed: pd.DataFrame, objective: str,
                 stats: dict, stats_by_horizon: dict[int, dict]) -> tuple[str, pd.DataFrame]:
    """(markdown, csv frame) of the comparison; ``frame`` holds the succeeded jobs."""
    lines = [f"# Model comparison: {Path(sweep_dir).name}", "",
             f"{len(frame)} jobs succeeded, {len(failed)} failed. Objective: `{objective}` "
             f"({'lower' if objective.endswith('log_loss') else 'higher'} is better).", ""]
    csv = pd.DataFrame()
    if len(frame):
        best = best_per_model_horizon(frame, objective)
        for column, title in TABLE_METRICS.items():
            table = best[column].unstack("horizon")
            table.columns = [f"h{h}" for h in table.columns]
            lines += [f"## {title}" + (f" (`{objective}`)" if column == "objective" else ""), "",
                      markdown_table(table, "model"), ""]
        if (best["n_jobs"] > 1).any():
            lines += ["Where a model ran several jobs at one horizon (a sweep), its best job "
                      "by the objective is shown.", ""]
        ascending = objective.endswith("log_loss")
        winners = best.reset_index().sort_values(objective, ascending=ascending).groupby(
            "horizon").head(1).set_index("horizon").sort_index()
        table = winners[["model", "objective", "test.sharpe", "test.f1_macro", "job"]]
        lines += ["## Best model per horizon", "", markdown_table(table, "horizon"), ""]
        lines += ["## Correlation of validation predictions (`p_long - p_short`)", ""]
        corrs = correlation_by_horizon(sweep_dir, best)
        if not corrs:
            lines += ["Needs at least two models at one horizon.", ""]
        for horizon, corr in corrs.items():
            lines += [f"### h{horizon} ({corr.attrs['n_rows']} validation rows every model "
                      "predicts)", "", markdown_table(corr, "model"), ""]
        lines += ["## Selection statistics", "", "All jobs:", *_overfitting_lines(stats), ""]
        for horizon, hstats in sorted(stats_by_horizon.items()):
            lines += [f"Horizon {horizon}:", *_overfitting_lines(hstats), ""]
        plot = plot_objective(best, objective, Path(sweep_dir) / "model_comparison.png")
        lines += [f"![objective by horizon]({plot.name})", ""]
        csv = best.reset_index()[["model", "horizon", "job", "n_jobs", "objective",
                                  "val.sharpe", "test.sharpe", "test.f1_macro"]]
        csv.insert(3, "status", "ok")
        csv["error"] = ""
    if len(failed):
        lines += ["## Failed jobs", "", markdown_table(
            failed.set_index("job")[["model", "horizon", "error"]], "job"), ""]
        rows = failed.assign(status="failed")[["model", "horizon", "job", "status", "error"]]
        csv = pd.concat([csv, rows], ignore_index=True)
    return "\n".join(lines), csv


def write_comparison(sweep_dir: Path, frame: pd.DataFrame, failed: pd.DataFrame,
                     objective: str, stats: dict,
                     stats_by_horizon: dict[int, dict]) -> Path:
    """Write ``model_comparison.md`` and ``model_comparison.csv`` (and the plot) into
    ``sweep_dir``; returns the markdown path."""
    text, csv = build_report(sweep_dir, frame, failed, objective, stats, stats_by_horizon)
    path = Path(sweep_dir) / "model_comparison.md"
    path.write_text(text)
    csv.to_csv(Path(sweep_dir) / "model_comparison.csv", index=False)
    log.info("model comparison: %s", path)
    return path
