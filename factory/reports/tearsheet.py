"""One self-contained ``tearsheet.html`` (charts inlined as base64 PNG, CSS inline, no
network) plus the PNGs and ``sim_metrics.json``, from a simulation's result.

The page: KPI tiles; the headline table (return, risk-adjusted, drawdown, tail, trades,
activity, costs; definitions in :mod:`factory.reports.metrics`); equity and underwater
curves; monthly and daily return tables; rolling Sharpe; exposure; the trade distribution
(net P&L histogram, holding times); long vs short; per symbol; per regime (from regime
columns given to it, e.g. Phase 1's ``vol_regime_*`` / ``trend_regime_*`` / ``hmm_state``);
and every risk-limit event.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from string import Template

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.reports import charts
from factory.reports.metrics import (
    activity_stats,
    daily_returns,
    daily_stats,
    drawdown,
    trade_stats,
)

log = logging.getLogger(__name__)
TEMPLATE = Path(__file__).parent / "templates" / "tearsheet.html"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# headline rows: (group, key, label, format)
HEADLINE_LEFT = [
    ("Return", "net_pnl", "Net P&L", "money"), ("Return", "total_return", "Total return", "pct"),
    ("Return", "cagr", "CAGR", "pct"), ("Return", "volatility", "Volatility (ann.)", "pct"),
    ("Risk-adjusted", "sharpe", "Sharpe", "num"), ("Risk-adjusted", "sortino", "Sortino", "num"),
    ("Risk-adjusted", "calmar", "Calmar", "num"),
    ("Drawdown", "max_drawdown", "Max drawdown (daily)", "pct"),
    ("Drawdown", "max_drawdown_days", "Longest drawdown (days)", "int"),
    ("Drawdown", "max_drawdown_intraday", "Max drawdown (per bar)", "pct"),
    ("Tail (daily, historical)", "var_95", "VaR 95%", "pct"),
    ("Tail (daily, historical)", "cvar_95", "CVaR 95%", "pct"),
    ("Tail (daily, historical)", "var_99", "VaR 99%", "pct"),
    ("Tail (daily, historical)", "cvar_99", "CVaR 99%", "pct"),
]
HEADLINE_RIGHT = [
    ("Trades", "trades", "Trades", "int"), ("Trades", "win_rate", "Win rate", "pct"),
    ("Trades", "profit_factor", "Profit factor", "num"),
    ("Trades", "payoff_ratio", "Payoff ratio", "num"),
    ("Trades", "expectancy", "Expectancy (per trade)", "money"),
    ("Trades", "avg_bars_held", "Average holding (bars)", "num"),
    ("Days", "win_days", "Winning days", "pct"),
    ("Days", "profit_factor_days", "Profit factor (days)", "num"),
    ("Days", "best_day", "Best day", "pct"), ("Days", "worst_day", "Worst day", "pct"),
    ("Activity", "exposure", "Exposure (bars in market)", "pct"),
    ("Activity", "turnover", "Turnover (x equity / year)", "num"),
    ("Costs", "commission", "Commission", "money"), ("Costs", "slippage", "Slippage", "money"),
    ("Costs", "costs_share_of_gross", "Costs / gross P&L", "pct"),
]


def fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _signed(value, kind: str) -> str:
    cls = "pos" if isinstance(value, int | float) and value > 0 else \
        "neg" if isinstance(value, int | float) and value < 0 else ""
    return f'<span class="{cls}">{fmt(value, kind)}</span>'


def _png(fig, path: Path) -> str:
    """Save ``fig`` as ``path`` and return it as a data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = buf.getvalue()
    path.write_bytes(data)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _metric_table(rows, values: dict) -> str:
    out, group = ['<table class="metrics">'], None
    for g, key, label, kind in rows:
        if g != group:
            out.append(f'<tr class="group"><td colspan="2">{html.escape(g)}</td></tr>')
            group = g
        out.append(f"<tr><td>{html.escape(label)}</td><td>{fmt(values.get(key), kind)}</td></tr>")
    return "".join(out + ["</table>"])


SIGNED = {"net P&L", "avg P&L"}  # columns coloured by sign (P&L); the rest stay plain


def _frame_table(frame: pd.DataFrame, kinds: dict) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame])
    body = []
    for idx, row in frame.iterrows():
        cells = [f"<td>{html.escape(str(idx))}</td>"]
        for c in frame:
            kind = kinds.get(c, "num")
            cells.append(f"<td>{_signed(row[c], kind) if c in SIGNED else fmt(row[c], kind)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _heat(value: float, lim: float) -> str:
    if not np.isfinite(value):
        return "<td></td>"
    a = min(abs(value) / lim, 1.0) * 0.55 if lim > 0 else 0.0
    rgb = "22,163,74" if value >= 0 else "220,38,38"
    return f'<td style="background: rgba({rgb},{a:.2f})">{value:.2%}</td>'


def monthly_returns(daily: pd.Series) -> pd.DataFrame:
    """Compounded returns per month (columns Jan..Dec) and per year (``Year``)."""
    idx = daily.index.tz_convert(None) if daily.index.tz is not None else daily.index
    d = pd.Series(daily.to_numpy(), index=idx)
    by = (1 + d).groupby([idx.year, idx.month]).prod() - 1
    table = pd.DataFrame(np.nan, index=sorted(set(idx.year)), columns=MONTHS)
    for (y, m), v in by.items():
        table.loc[y, MONTHS[m - 1]] = v
    table["Year"] = ((1 + d).groupby(idx.year).prod() - 1).reindex(table.index).to_numpy()
    table.index.name = "year"
    return table


def _monthly_html(table: pd.DataFrame) -> str:
    lim = float(np.nanmax(np.abs(table[MONTHS].to_numpy()))) if table[MONTHS].notna().any().any() \
        else 1.0
    head = "<tr><th>Year</th>" + "".join(f"<th>{c}</th>" for c in table.columns) + "</tr>"
    rows = [f"<tr><td>{y}</td>" + "".join(_heat(v, lim) for v in row) + "</tr>"
            for y, row in zip(table.index, table.to_numpy(), strict=True)]
    return f'<table class="heat">{head}{"".join(rows)}</table>'


def _daily_html(daily: pd.Series) -> str:
    """A calendar: one row per week (its Monday), Sunday to Friday columns."""
    if daily.empty:
        return "<p class='note'>No complete session.</p>"
    idx = daily.index.tz_convert(None) if daily.index.tz is not None else daily.index
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    days = sorted(set(idx.day_of_week))
    week = idx - pd.to_timedelta(idx.day_of_week, unit="D")
    lim = float(np.abs(daily.to_numpy()).max()) or 1.0
    head = "<tr><th>Week of</th>" + "".join(f"<th>{names[d]}</th>" for d in days) + \
        "<th>Week</th></tr>"
    rows = []
    for w in sorted(set(week)):
        sel = week == w
        vals = dict(zip(idx[sel].day_of_week, daily.to_numpy()[sel], strict=True))
        total = float(np.prod([1 + v for v in vals.values()]) - 1)
        rows.append(f"<tr><td>{w:%Y-%m-%d}</td>" + "".join(_heat(vals.get(d, np.nan), lim)
                                                            for d in days)
                    + _heat(total, lim) + "</tr>")
    return f'<table class="heat">{head}{"".join(rows)}</table>'


def _group_table(trades: pd.DataFrame, key: str, names: dict | None = None) -> pd.DataFrame:
    rows = {}
    for value, sub in trades.groupby(key, sort=True):
        st = trade_stats(sub)
        rows[names.get(value, value) if names else value] = {
            "trades": st["trades"], "net P&L": float(sub["net_pnl"].sum()),
            "win rate": st["win_rate"], "profit factor": st["profit_factor"],
            "avg P&L": st["expectancy"],
            "costs": float(sub["commission"].sum() + sub["slippage"].sum())}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = key
    return frame


def regime_performance(positions: pd.DataFrame, trades: pd.DataFrame,
                       regimes: pd.DataFrame) -> pd.DataFrame:
    """P&L per regime value: bars, bars in the market, P&L and trades entered in it.

    ``regimes`` has ``timestamp``, ``symbol`` and one column per regime variable (a value
    known at that bar); a trade belongs to the regime of its entry bar.
    """
    missing = {"timestamp", "symbol"} - set(regimes.columns)
    if missing:
        raise FactoryError(f"regime frame needs columns {sorted(missing)}, got "
                           f"{list(regimes.columns)[:6]}")
    cols = [c for c in regimes.columns if c not in ("timestamp", "symbol")]
    reg = regimes.assign(symbol=regimes["symbol"].astype(str))
    pos = positions.assign(symbol=positions["symbol"].astype(str)).merge(
        reg, on=["timestamp", "symbol"], how="left")
    tr = trades.assign(symbol=trades["symbol"].astype(str)).merge(
        reg.rename(columns={"timestamp": "entry_time"}), on=["entry_time", "symbol"], how="left")
    rows = []
    for col in cols:
        for value, sub in pos.groupby(col, sort=True):
            t = tr[tr[col] == value]
            rows.append({"regime": f"{col} = {value}", "bars": len(sub),
                         "in market": float((sub["position"] != 0).mean()),
                         "net P&L": float(sub["pnl"].sum()), "trades": len(t),
                         "win rate": float((t["net_pnl"] > 0).mean()) if len(t) else np.nan})
    return pd.DataFrame(rows).set_index("regime") if rows else pd.DataFrame()


class Tearsheet:
    """Writes the tearsheet of a :class:`~factory.simulation.result.SimResult`.

    Parameters: ``rolling_days`` (window of the rolling Sharpe, in sessions),
    ``trading_days_per_year`` (annualisation, the data's calendar), ``session_gap_minutes``
    and ``session_minutes`` (sessions for the daily resampling, as in the simulator),
    ``title``.
    """

    def __init__(self, rolling_days: int = 20, trading_days_per_year: float = 252.0,
                 session_gap_minutes: float = 60.0, session_minutes: float = 1380.0,
                 title: str = "Simulated trading") -> None:
        self.rolling_days = int(rolling_days)
        self.periods = float(trading_days_per_year)
        self.gap = float(session_gap_minutes)
        self.session_minutes = float(session_minutes)
        self.title = title

    def daily(self, equity: pd.Series, initial: float, timeframe: pd.Timedelta) -> pd.Series:
        """Daily (per session) returns of the per-bar equity curve."""
        return daily_returns(equity, initial, self.gap, timeframe, self.session_minutes)

    def metrics(self, result, point_values: dict, timeframe: pd.Timedelta) -> dict:
        """Every headline figure (the content of ``sim_metrics.json``)."""
        initial = float(result.summary["initial_capital"])
        eq = result.equity["equity"]
        daily = self.daily(eq, initial, timeframe)
        out = {"initial_capital": initial, "final_equity": float(eq.iloc[-1]),
               "net_pnl": float(eq.iloc[-1] - initial),
               "start": str(eq.index[0]), "end": str(eq.index[-1]), "bars": int(len(eq))}
        out.update(daily_stats(daily, initial, self.periods))
        out["max_drawdown_intraday"] = float(drawdown(eq.to_numpy(), initial).min())
        out.update(trade_stats(result.trades))
        out.update(activity_stats(result.equity, result.trades, point_values, len(daily),
                                  self.periods))
        out["limit_events"] = {str(k): int(v) for k, v in
                               result.events["kind"].value_counts().items()} \
            if len(result.events) else {}
        out["killed"] = bool(result.summary.get("killed", False))
        return out

    def write(self, result, out_dir: Path, point_values: dict, timeframe: pd.Timedelta,
              regimes: pd.DataFrame | None = None) -> dict:
        """Write ``tearsheet.html``, its PNGs and ``sim_metrics.json``; return the metrics."""
        if result.equity.empty:
            raise FactoryError("the simulation has no bars: nothing to report")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        m = self.metrics(result, point_values, timeframe)
        strict = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                  for k, v in m.items()}  # strict JSON: undefined ratios are null
        (out / "sim_metrics.json").write_text(json.dumps(strict, indent=2, default=str))
        initial = m["initial_capital"]
        eq = result.equity["equity"]
        daily = self.daily(eq, initial, timeframe)
        trades = result.trades
        img = {"equity": _png(charts.equity_underwater(eq, initial), out / "equity.png"),
               "rolling": _png(charts.rolling_sharpe(daily, self.rolling_days, self.periods),
                               out / "rolling_sharpe.png"),
               "exposure": _png(charts.exposure(result.equity, result.positions),
                                out / "exposure.png"),
               "trades": _png(charts.trade_distribution(trades), out / "trades.png")}
        if len(trades):
            ls = _group_table(trades, "side", {1: "long", -1: "short"})
            sym = _group_table(trades, "symbol")
        else:
            ls = sym = pd.DataFrame({"net P&L": []})
        img["long_short"] = _png(charts.bars_by_group(ls, "net P&L", "Net P&L by side"),
                                 out / "long_short.png")
        img["symbols"] = _png(charts.symbol_contribution(result.positions), out / "symbols.png")
        monthly = monthly_returns(daily)
        _png(charts.monthly_heatmap(monthly[MONTHS]), out / "monthly.png")
        regime_table, regime_img = "", ""
        note = "No regime columns were given to the report."
        if regimes is not None and len(regimes.columns) > 2:
            reg = regime_performance(result.positions, trades, regimes)
            note = "Each bar's P&L under the regime known at that bar; trades by entry bar."
            regime_table = _frame_table(reg, {"bars": "int", "trades": "int", "in market": "pct",
                                              "net P&L": "money", "win rate": "pct"})
            uri = _png(charts.bars_by_group(reg, "net P&L", "Net P&L by regime"),
                       out / "regimes.png")
            regime_img = f'<img class="chart" alt="per regime" src="{uri}">'
        kinds = {"trades": "int", "net P&L": "money", "win rate": "pct", "profit factor": "num",
                 "avg P&L": "money", "costs": "money"}
        page = Template(TEMPLATE.read_text()).substitute(
            title=html.escape(self.title),
            subtitle=html.escape(f"{m['start'][:16]} → {m['end'][:16]} UTC · "
                                 f"{', '.join(result.summary.get('symbols', []))} · "
                                 f"{m['bars']:,} bars · {m.get('days', 0)} sessions · "
                                 f"initial capital {initial:,.0f}"),
            kpis=self._kpis(m), headline_left=_metric_table(HEADLINE_LEFT, m),
            headline_right=_metric_table(HEADLINE_RIGHT, m),
            img_equity=img["equity"], img_rolling=img["rolling"], img_exposure=img["exposure"],
            img_trades=img["trades"], img_long_short=img["long_short"],
            img_symbols=img["symbols"], monthly_table=_monthly_html(monthly),
            daily_table=_daily_html(daily), long_short_table=_frame_table(ls, kinds),
            symbol_table=_frame_table(sym, kinds), regime_note=note,
            regime_table=regime_table, regime_img=regime_img,
            events_table=self._events(result.events), footer=self._footer())
        (out / "tearsheet.html").write_text(page, encoding="utf-8")
        log.info("tearsheet written to %s", out / "tearsheet.html")
        return m

    @staticmethod
    def _kpis(m: dict) -> str:
        tiles = [("Net P&L", m["net_pnl"], "money"), ("CAGR", m.get("cagr"), "pct"),
                 ("Sharpe", m.get("sharpe"), "num"), ("Max drawdown", m.get("max_drawdown"), "pct"),
                 ("Trades", m["trades"], "int"), ("Win rate", m["win_rate"], "pct")]
        return "".join(f'<div class="kpi"><div class="label">{label}</div>'
                       f'<div class="value">{_signed(v, k) if k != "int" else fmt(v, k)}</div>'
                       f"</div>" for label, v, k in tiles)

    @staticmethod
    def _events(events: pd.DataFrame) -> str:
        if events.empty:
            return "<p class='note'>No risk limit was reached.</p>"
        shown = events.head(200)
        rows = "".join(
            f"<tr><td>{e.time:%Y-%m-%d %H:%M}</td><td>{html.escape(str(e.kind))}</td>"
            f"<td>{html.escape(str(e.symbol) or 'portfolio')}</td><td>{e.value:,.4g}</td>"
            f"<td>{e.limit:,.4g}</td></tr>" for e in shown.itertuples())
        more = f"<p class='note'>{len(events) - 200} more in events.parquet.</p>" \
            if len(events) > 200 else ""
        return ("<table><tr><th>time (UTC)</th><th>event</th><th>symbol</th><th>value</th>"
                f"<th>limit</th></tr>{rows}</table>{more}")

    def _footer(self) -> str:
        return ("Daily statistics on session-end equity (quantstats' formulas; VaR/CVaR "
                f"historical), annualised with {self.periods:g} sessions a year. Trade "
                "statistics on net P&L after commission and slippage. Generated by factory "
                "(factory/reports/tearsheet.py).")
