"""The monitoring report: ``monitor_report.md`` with its PNGs, and ``monitor.json``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = {"font.size": 9, "axes.titlesize": 10.5, "axes.titleweight": "bold",
         "axes.titlelocation": "left", "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.color": "#e2e8f0"}
LEVEL_COLOR = {"ok": "#16a34a", "warn": "#f59e0b", "alert": "#dc2626"}
ICON = {0: "HEALTHY", 1: "WARN", 2: "ALERT"}


def _psi_png(report, path: Path, warn: float, alert: float) -> None:
    top = report.psi.head(25).iloc[::-1]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 0.28 * max(len(top), 4) + 1.2))
        ax.barh(top["column"], top["psi"], color=[LEVEL_COLOR[x] for x in top["level"]])
        ax.axvline(warn, color=LEVEL_COLOR["warn"], ls="--", lw=1, label=f"warn {warn:g}")
        ax.axvline(alert, color=LEVEL_COLOR["alert"], ls="--", lw=1, label=f"alert {alert:g}")
        ax.set_title("Population stability index (largest first)")
        ax.legend(loc="lower right", frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _reliability_png(report, path: Path) -> None:
    t = report.reliability
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.5, 4.2))
        ax.plot([0, 1], [0, 1], color="#94a3b8", ls="--", lw=1, label="perfect")
        ax.plot(t["confidence"], t["accuracy"], "o-", color="#2563eb", label="live")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence of the predicted class")
        ax.set_ylabel("share correct")
        ax.set_title("Reliability")
        ax.legend(loc="upper left", frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _rolling_png(report, path: Path) -> None:
    """Rolling accuracy and rolling per-trade Sharpe, each against its validation figure."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 1, figsize=(7.5, 5.0), sharex=True)
        panels = ((report.rolling, "accuracy", "#7c3aed", "Rolling accuracy"),
                  (report.rolling_sharpe, "trade_sharpe", "#0891b2",
                   "Rolling per-trade Sharpe (net of costs)"))
        for ax, (series, key, color, title) in zip(axes, panels, strict=True):
            r = series.dropna()
            if len(r):
                idx = r.index.tz_convert(None) if r.index.tz is not None else r.index
                ax.plot(idx, r.to_numpy(), color=color, lw=1.3, label="live")
            ref = report.reference.get(key)
            if ref is not None and np.isfinite(ref):
                ax.axhline(ref, color="#0f172a", ls="--", lw=1, label=f"validation {ref:.3f}")
            ax.set_title(f"{title} over the last {report.window} resolved predictions")
            ax.legend(loc="best", frameon=False)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _strict(obj):
    """NaN / inf -> None, recursively: monitor.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    return obj


def _fmt(v) -> str:
    if isinstance(v, float):
        return "–" if not np.isfinite(v) else f"{v:.4f}"
    return str(v)


def write_report(report, out: Path, warn: float = 0.1, alert: float = 0.2) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files = ["monitor_report.md", "monitor.json"]
    lines = [f"# Monitoring report: {ICON[report.status]} (exit code {report.exit_code})", "",
             f"{report.rows:,} predictions logged, {report.resolved:,} with a known outcome.", ""]
    lines += ["## Recommendations", ""]
    if report.recommendations:
        lines += [f"- **{r['trigger']}** ({ICON[r['severity']].lower()}): {r['reason']}"
                  for r in report.recommendations]
    else:
        lines.append("- none: no retraining trigger fired")
    lines += [""] + ([f"> {n}" for n in report.notes] + [""] if report.notes else [])
    if len(report.psi):
        _psi_png(report, out / "psi.png", warn, alert)
        files.append("psi.png")
        lines += ["## Drift (PSI against the training deciles)", "", "![PSI](psi.png)", "",
                  "| column | kind | PSI | level |", "| --- | --- | ---: | --- |"]
        lines += [f"| {r.column} | {r.kind} | {r.psi:.4f} | {r.level} |"
                  for r in report.psi.itertuples()]
        lines.append("")
    if report.live:
        _reliability_png(report, out / "reliability.png")
        _rolling_png(report, out / "rolling_accuracy.png")
        files += ["reliability.png", "rolling_accuracy.png"]
        keys = ["accuracy", "brier", "ece", "trades", "trade_mean", "trade_sharpe"]
        lines += ["## Calibration and performance", "",
                  "| figure | live (last window) | validation |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {_fmt(report.live.get(k))} | {_fmt(report.reference.get(k, '–'))} |"
                  for k in keys]
        lines += ["", "![reliability](reliability.png) ![rolling accuracy and Sharpe]"
                  "(rolling_accuracy.png)",
                  "", "| confidence bin | rows | mean confidence | accuracy |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {r.bin} | {r.rows} | {r.confidence:.3f} | {r.accuracy:.3f} |"
                  for r in report.reliability.itertuples()]
        lines.append("")
    (out / "monitor_report.md").write_text("\n".join(lines))
    (out / "monitor.json").write_text(json.dumps(_strict(report.to_dict()), indent=2,
                                                 default=str))
    return files
