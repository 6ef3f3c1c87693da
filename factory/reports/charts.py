"""The tearsheet's charts (matplotlib, Agg): each returns a figure the page embeds as PNG.

Colours are fixed (``COLORS``) so the page reads the same everywhere; the browser test
looks for the equity line's and the underwater fill's colours in the screenshot.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402

COLORS = {"equity": "#2563eb", "underwater": "#dc2626", "gain": "#16a34a", "loss": "#dc2626",
          "neutral": "#64748b", "grid": "#e2e8f0", "text": "#1e293b", "accent": "#7c3aed"}
PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#7c3aed", "#ef4444", "#0ea5e9", "#84cc16"]
STYLE = {
    "font.size": 9, "axes.titlesize": 10.5, "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.edgecolor": "#cbd5e1", "axes.labelcolor": COLORS["text"], "axes.grid": True,
    "grid.color": COLORS["grid"], "grid.linewidth": 0.8, "axes.spines.top": False,
    "axes.spines.right": False, "xtick.color": "#475569", "ytick.color": "#475569",
    "figure.facecolor": "white", "axes.facecolor": "white", "legend.frameon": False,
}
WIDE, HALF = (10.0, 3.0), (5.0, 3.0)
UNDERWATER_ALPHA = 0.6  # above the page's heat-map cells (<= 0.55): a colour only this chart has


def _money(x, _pos=None) -> str:
    return f"{x:,.0f}"


def _dates(ax) -> None:
    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _fig(size=WIDE, rows: int = 1, ratios=None) -> tuple[Figure, list]:
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, 1, figsize=size, sharex=rows > 1, squeeze=False,
                                 gridspec_kw={"height_ratios": ratios} if ratios else None)
    return fig, list(axes[:, 0])


def equity_underwater(equity: pd.Series, initial: float) -> Figure:
    """Account equity per bar and its drawdown from the running peak."""
    with plt.rc_context(STYLE):
        fig, (ax, ax2) = _fig((10.0, 4.6), 2, [2.2, 1])
        x = equity.index.tz_convert(None)
        ax.plot(x, equity.to_numpy(), color=COLORS["equity"], lw=1.4)
        ax.axhline(initial, color=COLORS["neutral"], lw=0.8, ls="--")
        ax.fill_between(x, initial, equity.to_numpy(), color=COLORS["equity"], alpha=0.08)
        ax.yaxis.set_major_formatter(FuncFormatter(_money))
        ax.set_title("Equity")
        peak = np.maximum.accumulate(np.r_[initial, equity.to_numpy()])[1:]
        dd = equity.to_numpy() / peak - 1.0
        ax2.fill_between(x, dd, 0, color=COLORS["underwater"], alpha=UNDERWATER_ALPHA, lw=0)
        ax2.plot(x, dd, color=COLORS["underwater"], lw=0.8)
        ax2.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        ax2.set_title("Underwater (drawdown from the peak)")
        _dates(ax2)
        fig.tight_layout()
    return fig


def rolling_sharpe(daily: pd.Series, window: int, periods: float) -> Figure:
    """Rolling annualised Sharpe of daily returns; a run shorter than ``2 x window`` sessions
    uses half its length (at least 5), and the title says which window was drawn."""
    with plt.rc_context(STYLE):
        fig, (ax,) = _fig()
        w = int(window) if len(daily) >= 2 * window else max(5, len(daily) // 2)
        roll = daily.rolling(w)
        rs = roll.mean() / roll.std() * np.sqrt(periods)
        x = daily.index.tz_convert(None) if daily.index.tz is not None else daily.index
        ax.plot(x, rs.to_numpy(), color=COLORS["accent"], lw=1.5)
        ax.axhline(0, color=COLORS["neutral"], lw=0.8)
        std = daily.std() if len(daily) > 1 else 0.0
        full = daily.mean() / std * np.sqrt(periods) if std > 0 else np.nan
        if np.isfinite(full):
            ax.axhline(full, color=COLORS["accent"], lw=0.8, ls="--", label=f"whole run {full:.2f}")
            ax.legend(loc="upper left")
        if len(x) > 1:  # one session: matplotlib picks the limits
            ax.set_xlim(x[0], x[-1])
        ax.set_title(f"Rolling Sharpe ({w} sessions, annualised)")
        _dates(ax)
        fig.tight_layout()
    return fig


def exposure(equity: pd.DataFrame, positions: pd.DataFrame) -> Figure:
    """Gross leverage (notional / equity) and contracts held per symbol."""
    with plt.rc_context(STYLE):
        fig, (ax, ax2) = _fig((10.0, 4.2), 2, [1, 1.2])
        x = equity.index.tz_convert(None)
        lev = equity["gross_notional"] / equity["equity"]
        ax.fill_between(x, lev.to_numpy(), 0, color=COLORS["neutral"], alpha=0.45, lw=0,
                        step="post")
        ax.set_title("Gross exposure (notional / equity)")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.1f}x"))
        for k, (sym, sub) in enumerate(positions.groupby("symbol", sort=True, observed=True)):
            ax2.step(sub["timestamp"].dt.tz_convert(None), sub["position"], where="post",
                     lw=0.9, color=PALETTE[k % len(PALETTE)], label=str(sym))
        ax2.axhline(0, color=COLORS["neutral"], lw=0.6)
        ax2.set_title("Position (contracts, + long / - short)")
        ax2.legend(loc="upper left", ncol=4)
        _dates(ax2)
        fig.tight_layout()
    return fig


def trade_distribution(trades: pd.DataFrame) -> Figure:
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=WIDE)
        pnl = trades["net_pnl"].to_numpy()
        bins = np.histogram_bin_edges(pnl, bins=min(40, max(5, len(pnl) // 4))) if len(pnl) \
            else 10
        axes[0].hist(pnl[pnl <= 0], bins=bins, color=COLORS["loss"], alpha=0.75, label="losers")
        axes[0].hist(pnl[pnl > 0], bins=bins, color=COLORS["gain"], alpha=0.75, label="winners")
        if len(pnl):
            axes[0].axvline(pnl.mean(), color=COLORS["text"], lw=1, ls="--",
                            label=f"mean {pnl.mean():,.1f}")
        axes[0].set_title("Net P&L per trade")
        axes[0].legend(loc="upper right")
        held = trades["bars_held"].to_numpy()
        axes[1].hist(held, bins=np.arange(0.5, max(held.max(initial=1), 1) + 1.5, 1)
                     if len(held) and held.max() <= 60 else 30, color=COLORS["equity"], alpha=0.8)
        axes[1].set_title("Holding time (bars)")
        fig.tight_layout()
    return fig


def bars_by_group(table: pd.DataFrame, value: str, title: str) -> Figure:
    """Horizontal bars of ``value`` per row of ``table`` (green gains, red losses)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.0, 0.45 * max(len(table), 2) + 1.0))
        v = table[value].to_numpy(np.float64)
        ax.barh([str(i) for i in table.index], v,
                color=[COLORS["gain"] if x >= 0 else COLORS["loss"] for x in v])
        ax.axvline(0, color=COLORS["neutral"], lw=0.8)
        ax.xaxis.set_major_formatter(FuncFormatter(_money))
        ax.invert_yaxis()
        ax.set_title(title)
        fig.tight_layout()
    return fig


def symbol_contribution(positions: pd.DataFrame) -> Figure:
    """Cumulative P&L per symbol."""
    with plt.rc_context(STYLE):
        fig, (ax,) = _fig(HALF)
        for k, (sym, sub) in enumerate(positions.groupby("symbol", sort=True, observed=True)):
            ax.plot(sub["timestamp"].dt.tz_convert(None), sub["pnl"].cumsum(), lw=1.3,
                    color=PALETTE[k % len(PALETTE)], label=str(sym))
        ax.axhline(0, color=COLORS["neutral"], lw=0.8)
        ax.yaxis.set_major_formatter(FuncFormatter(_money))
        ax.set_title("Cumulative P&L per symbol")
        ax.legend(loc="upper left")
        _dates(ax)
        fig.tight_layout()
    return fig


def monthly_heatmap(monthly: pd.DataFrame) -> Figure:
    """Month x year returns as a heat map (the page also has it as a table)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(10.0, 0.5 * max(len(monthly), 1) + 1.2))
        v = monthly.to_numpy(np.float64)
        lim = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
        ax.imshow(v, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(v.shape[1]), monthly.columns)
        ax.set_yticks(range(v.shape[0]), [str(y) for y in monthly.index])
        ax.grid(False)
        for (i, j), val in np.ndenumerate(v):
            if np.isfinite(val):
                ax.text(j, i, f"{val:.1%}", ha="center", va="center", fontsize=8)
        ax.set_title("Monthly returns")
        fig.tight_layout()
    return fig
