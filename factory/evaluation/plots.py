"""Run plots: equity curves, confusion matrices, feature importance (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from factory.dataset import CLASS_NAMES, CLASSES  # noqa: E402

AXIS_NAMES = [f"{name} ({label:+d})" if label else f"{name} (0)"
              for name, label in zip(CLASS_NAMES, CLASSES, strict=True)]


def equity_curve(curves: dict[str, pd.Series], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, eq in curves.items():
        if len(eq):
            ax.plot(eq.index, eq.to_numpy(), label=name, lw=1.2)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(title=title, ylabel="equity (start = 1)")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion(matrix: np.ndarray, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(3):
        for j in range(3):
            ax.text(j, i, f"{matrix[i, j]}\n{shares[i, j]:.0%}", ha="center", va="center",
                    color="white" if shares[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(3), AXIS_NAMES, fontsize=8)
    ax.set_yticks(range(3), AXIS_NAMES, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def importance(values: pd.Series, path: Path, title: str, top: int = 25) -> Path:
    top_values = values.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(top_values) + 1)))
    ax.barh(top_values.index, top_values.to_numpy(), color="tab:blue")
    ax.set(title=title, xlabel="importance (share of total)")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


REGIME_COLOURS = {"low": "tab:blue", "normal": "tab:grey", "high": "tab:red",
                  "down": "tab:red", "flat": "tab:grey", "up": "tab:green",
                  "unknown": "lightgrey"}


def equity_by_regime(returns: dict[str, pd.Series], states: dict[str, dict[str, np.ndarray]],
                     path: Path, title: str) -> Path:
    """Each symbol's equity (cumulative product of its bar returns), one panel per regime
    kind, each step coloured by the regime known when it started."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    kinds = ["volatility", "trend"]
    symbols = list(returns)
    fig, axes = plt.subplots(len(symbols), len(kinds), figsize=(11, 2.8 * len(symbols) + 0.6),
                             squeeze=False)
    for i, sym in enumerate(symbols):
        r = returns[sym]
        equity = np.concatenate([[1.0], np.cumprod(1.0 + r.to_numpy())])
        x = np.arange(len(equity))
        points = np.column_stack([x, equity])
        segments = np.stack([points[:-1], points[1:]], axis=1)
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            state = states[sym][kind]
            colours = [REGIME_COLOURS.get(s, "black") for s in state]
            ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.2))
            ax.set_xlim(0, max(len(equity) - 1, 1))
            pad = max(1e-6, 0.05 * (equity.max() - equity.min()))
            ax.set_ylim(equity.min() - pad, equity.max() + pad)
            ax.axhline(1.0, color="grey", lw=0.6, ls="--")
            ax.set_title(f"{sym}: by {kind} regime", fontsize=9)
            ax.set_xlabel("bar of the split", fontsize=8)
            present = [s for s in REGIME_COLOURS if s in set(state)]
            ax.legend([Line2D([], [], color=REGIME_COLOURS[s]) for s in present], present,
                      fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
