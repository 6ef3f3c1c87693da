"""The portfolio report: ``portfolio/`` in the run directory.

``tearsheet.html`` is the simulation tearsheet (:class:`factory.reports.Tearsheet`) of the
chosen book on the test period, followed by the portfolio's own sections: the comparison of
books (each instrument alone, the equal-weight book, the rule baseline, the configured and
the optimised portfolio, all on the test period), the correlation matrix of instrument
returns, risk contributions per instrument and P&L contribution per instrument.
``portfolio_metrics.json`` holds every figure; the tables are also CSV files.

Risk contributions (annualised, Euler: each set sums to its portfolio volatility):

* **ex ante, allocation**: ``w_i (Σw)_i / σ(w)`` of the weights in force (every instrument
  on, same direction), averaged over the period's estimates (equal across instruments for
  ERC, by construction);
* **ex ante, held**: the same for the signed notional weights actually held at each grid
  point (:func:`factory.portfolio.book.held_weights`) under the covariance in force then,
  averaged over the grid points with a position;
* **realised**: ``cov(r_i, r_p) / σ(r_p)`` of the daily returns each instrument added to
  the account (its P&L over the previous session's equity; ``r_p = Σ r_i`` is the account's
  daily return), so they sum to the tearsheet's annualised volatility.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, PercentFormatter

from factory.portfolio.book import BookRun, held_weights
from factory.portfolio.risk import risk_contributions
from factory.reports.charts import COLORS, PALETTE, STYLE
from factory.reports.metrics import sessions
from factory.reports.tearsheet import _frame_table, _png

log = logging.getLogger(__name__)
COLUMNS = {"sharpe": "num", "sortino": "num", "max_drawdown": "pct", "volatility": "pct",
           "total_return": "pct", "net_pnl": "money", "trades": "int", "win_rate": "pct",
           "exposure": "pct"}


def daily_contributions(run: BookRun, initial: float, gap_minutes: float,
                        timeframe: pd.Timedelta, session_minutes: float) -> pd.DataFrame:
    """Per session (the tearsheet's trading dates) and symbol: the P&L over the previous
    session's equity. Rows sum to the account's daily return."""
    eq = run.result.equity["equity"]
    sid = sessions(eq.index, gap_minutes, timeframe)
    first = np.r_[True, sid[1:] != sid[:-1]]
    start = pd.Series(eq.index[first], index=np.unique(sid))
    dates = (start + pd.Timedelta(minutes=session_minutes / 2)).dt.normalize()
    day = dates.reindex(sid).to_numpy()
    pos = run.result.positions
    pnl = pos.assign(symbol=pos["symbol"].astype(str)).pivot_table(
        index="timestamp", columns="symbol", values="pnl", aggfunc="sum", observed=True)
    pnl = pnl.reindex(index=eq.index, columns=run.symbols).fillna(0.0)
    by_day = pnl.groupby(day).sum()
    end_eq = eq.groupby(day).last()
    prev = np.r_[initial, end_eq.to_numpy()[:-1]]
    return by_day.div(prev, axis=0)


def realised_contributions(daily: pd.DataFrame, periods: float) -> pd.Series:
    """``cov(r_i, r_p) / σ(r_p)`` annualised; sums to the daily returns' annualised volatility."""
    total = daily.sum(axis=1)
    sd = float(total.std(ddof=1)) if len(total) > 1 else float("nan")
    if not sd > 0:
        return pd.Series(0.0, index=daily.columns)
    cov = [float(np.cov(daily[c], total, ddof=1)[0, 1]) for c in daily.columns]
    return pd.Series(np.asarray(cov) / sd * np.sqrt(periods), index=daily.columns)


def ex_ante_contributions(run: BookRun, universe, period) -> dict[str, pd.Series]:
    """Allocation and held-book ex-ante contributions, annualised, averaged (see above)."""
    est = run.estimates
    scale = np.sqrt(est.periods_per_year)
    start, end = period
    inside = (est.since >= start) & (est.since < end)
    ks = np.flatnonzero(inside) if inside.any() else np.arange(min(len(est.since), 1))
    alloc = np.mean([risk_contributions(est.weights[k], est.cov[k]) for k in ks], axis=0) \
        if len(ks) else np.zeros(len(run.symbols))
    grid = pd.date_range(start.ceil(est.step), end, freq=est.step, inclusive="left")
    held = held_weights(run, universe, grid)
    blocks = est.block(grid)
    rcs = [risk_contributions(x, est.cov[k]) for x, k in zip(held, blocks, strict=True)
           if k >= 0 and np.any(x != 0)]
    held_rc = np.mean(rcs, axis=0) if rcs else np.zeros(len(run.symbols))
    return {"allocation": pd.Series(alloc * scale, index=run.symbols),
            "held": pd.Series(held_rc * scale, index=run.symbols),
            "held_points": len(rcs)}


def pnl_contribution(run: BookRun) -> pd.DataFrame:
    pos = run.result.positions
    pnl = pos.assign(symbol=pos["symbol"].astype(str)).groupby("symbol")["pnl"].sum()
    pnl = pnl.reindex(run.symbols).fillna(0.0)
    total = float(pnl.sum())
    return pd.DataFrame({"net P&L": pnl, "share": pnl / total if total else np.nan})


def correlation_matrix(returns: pd.DataFrame, period) -> pd.DataFrame:
    """Sample correlation of the instruments' grid returns within ``period`` (complete rows)."""
    start, end = period
    rows = returns[(returns.index >= start) & (returns.index < end)].dropna()
    return rows.corr() if len(rows) > 2 else pd.DataFrame(np.nan, returns.columns,
                                                         returns.columns)


def _heatmap(corr: pd.DataFrame):
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(corr), 0.9 + 0.5 * len(corr)))
        im = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(corr)), corr.columns)
        ax.set_yticks(range(len(corr)), corr.index)
        for i in range(len(corr)):
            for j in range(len(corr)):
                ax.text(j, i, f"{corr.iat[i, j]:.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
        fig.tight_layout()
    return fig


def _bars(table: pd.DataFrame, title: str, signed: bool = False):
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 3.0))
        if signed:  # one series: green gains, red losses, money on the axis
            values = table.iloc[:, 0]
            ax.bar(values.index.astype(str), values.to_numpy(),
                   color=[COLORS["gain"] if v >= 0 else COLORS["loss"] for v in values])
            ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"{x:,.0f}"))
            ax.axhline(0.0, color=COLORS["neutral"], lw=0.8)
        else:
            table.plot.bar(ax=ax, width=0.8, color=PALETTE[: len(table.columns)])
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlabel("")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(table.columns))
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=0)
        fig.tight_layout()
    return fig


def _params_table(chosen: dict) -> str:
    """The chosen parameters as a two-column table (dotted keys)."""
    rows = []
    for key, value in chosen.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            shown = f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))
            rows.append(f"<tr><td>{html.escape(key if sub is None else f'{key}.{sub}')}</td>"
                        f"<td>{shown}</td></tr>")
    return f"<table class='metrics'>{''.join(rows)}</table>"


def comparison_table(books: dict[str, dict]) -> pd.DataFrame:
    frame = pd.DataFrame({name: {k: m.get(k) for k in COLUMNS} for name, m in books.items()}).T
    frame.index.name = "book"
    return frame


def write(out: Path, doc: dict, tables: dict[str, pd.DataFrame], corr: pd.DataFrame) -> None:
    """Add the portfolio sections to ``out/tearsheet.html``; write the JSON and CSV files."""
    out = Path(out)
    for name, frame in {**tables, "correlation": corr}.items():
        frame.to_csv(out / f"{name}.csv")
    strict = json.loads(json.dumps(doc, default=_plain), parse_constant=lambda _: None)
    (out / "portfolio_metrics.json").write_text(json.dumps(strict, indent=2))
    corr_uri = _png(_heatmap(corr), out / "correlation.png")
    rc = tables["risk_contributions"]
    rc_uri = _png(_bars(rc.drop(index="total", errors="ignore"),
                        "Risk contribution (annualised)"), out / "risk_contributions.png")
    pnl_uri = _png(_bars(tables["pnl_contribution"][["net P&L"]], "Net P&L per instrument",
                         signed=True), out / "pnl_contribution.png")
    periods = doc.get("periods", {})
    span = " · ".join(f"{k} {v[0][:16]} → {v[1][:16]}" for k, v in periods.items())
    sections = (
        "<div class='grid2'><section><h2>Books on the test period</h2><p class='note'>Each "
        "instrument alone, the equal-weight book, the rule baseline and the portfolio (as "
        f"configured and as optimised on validation). {html.escape(span)} UTC.</p>"
        f"{_frame_table(tables['comparison'], dict(COLUMNS))}</section>"
        "<section><h2>Chosen on validation</h2><p class='note'>Optuna, "
        f"{doc.get('trials', 0)} trials, objective {html.escape(str(doc.get('objective')))} "
        f"of the validation period.</p>{_params_table(doc['chosen'])}</section></div>"
        "<div class='grid2'><section><h2>Correlation of instrument returns</h2>"
        "<p class='note'>Grid returns of the test period (rows where every instrument "
        f"traded).</p><img class='chart' alt='correlation' src='{corr_uri}'></section>"
        "<section><h2>Risk contribution per instrument</h2><p class='note'>Annualised; each "
        "column sums to its portfolio volatility (ex ante: allocation and held book; "
        "realised: daily returns).</p>"
        f"{_frame_table(rc, dict.fromkeys(rc.columns, 'pct'))}"
        f"<img class='chart' alt='risk contributions' src='{rc_uri}'></section></div>"
        "<div class='grid2'><section><h2>P&amp;L contribution per instrument</h2>"
        f"{_frame_table(tables['pnl_contribution'], {'net P&L': 'money', 'share': 'pct'})}"
        "<p class='note'>Share: of the book's net P&amp;L.</p></section><section>"
        f"<img class='chart' alt='P&amp;L per instrument' src='{pnl_uri}'></section></div>")
    page = (out / "tearsheet.html").read_text(encoding="utf-8")
    anchor = "<section><h2>Equity and drawdown</h2>"
    if anchor not in page:
        anchor = "</main>"
    (out / "tearsheet.html").write_text(page.replace(anchor, sections + anchor, 1),
                                        encoding="utf-8")
    log.info("portfolio report written to %s", out / "tearsheet.html")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return str(value)
    if isinstance(value, pd.Series):
        return value.to_dict()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="index")
    return str(value)
