"""What a simulation produces, as frames: trades, fills, orders, limit events, positions, equity.

=========== ================================================================================
trades      one row per closed trade: symbol, side, qty, decision/entry/exit bar stamps,
            bars_held, exit_reason (upper, lower, ambiguous, vertical, signal, session_end,
            kill_switch, daily_loss), reference and filled prices, gross/cost/net return on
            the entry reference price (the research backtest's units), net_pnl, commission
            and slippage in currency
fills       every execution: time, symbol, order_id (-1 for bracket exits), reason, signed
            qty, reference price, fill price, slippage in points, commission
orders      every market order a decision or a limit sent: created/arrival/fill times,
            target position, status (filled, cancelled, void = nothing left to do)
events      every risk-limit event: time, kind (kill_switch, daily_loss, gross_cap,
            net_cap, correlation, session_flat, resume), symbol (empty = portfolio), the
            value and the limit
positions   per symbol bar: signed contracts after the bar, P&L in currency in the bar
equity      per bar stamp (all symbols): equity after the bar's close, its P&L, gross
            notional held
=========== ================================================================================

Times are UTC. Trade stamps follow the research backtest: ``entry_time`` is the stamp of the
bar the entry filled in, ``exit_time`` the stamp of the exit bar. A trade still open at the
end of a segment is not in ``trades``; it is carried in the state and closes later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from factory.simulation import kernel as K


def _stamp(ns: np.ndarray) -> pd.DatetimeIndex:
    """UTC stamps from int64 nanoseconds (a view, no parsing)."""
    return pd.DatetimeIndex(np.asarray(ns, np.int64).view("M8[ns]")).tz_localize("UTC")


def _labels(codes: np.ndarray, names, categorical: bool = False):
    """Names from integer codes (-1 = none: empty). ``categorical`` for the per-bar frame,
    where a million strings would cost more than the simulation itself."""
    codes = np.asarray(codes, np.int64)
    if categorical:
        return pd.Categorical.from_codes(codes, categories=list(names))
    return np.asarray([*names, ""], dtype=object)[codes]


@dataclass
class SimResult:
    trades: pd.DataFrame
    fills: pd.DataFrame
    orders: pd.DataFrame
    events: pd.DataFrame
    positions: pd.DataFrame
    equity: pd.DataFrame
    summary: dict = field(default_factory=dict)
    _buffers: dict | None = None

    # ---- kernel buffers
    @classmethod
    def allocate(cls, n: int, n_groups: int, cap: int) -> SimResult:
        """Empty buffers sized for ``cap`` orders (trades and fills follow from it)."""
        fills = 3 * cap
        buf = {
            "tr_i": np.zeros((cap, len(K.TR_I)), np.int64), "tr_f": np.zeros((cap, len(K.TR_F))),
            "fi_i": np.zeros((fills, len(K.FI_I)), np.int64),
            "fi_f": np.zeros((fills, len(K.FI_F))),
            "or_i": np.zeros((cap, len(K.OR_I)), np.int64), "or_f": np.zeros((cap, len(K.OR_F))),
            # a decision can raise a gross, a net and a correlation event: 4 x cap is room
            "ev_i": np.zeros((4 * cap + 4, len(K.EV_I)), np.int64),
            "ev_f": np.zeros((4 * cap + 4, len(K.EV_F))),
            "bar_pos": np.zeros(n), "bar_pnl": np.zeros(n),
            "g_equity": np.zeros(n_groups), "g_gross": np.zeros(n_groups),
        }
        empty = pd.DataFrame()
        return cls(empty, empty, empty, empty, empty, empty, {}, buf)

    def record_arrays(self) -> list[np.ndarray]:
        b = self._buffers
        return [b[k] for k in ("tr_i", "tr_f", "fi_i", "fi_f", "or_i", "or_f", "ev_i", "ev_f")]

    def bar_arrays(self) -> list[np.ndarray]:
        b = self._buffers
        return [b[k] for k in ("bar_pos", "bar_pnl", "g_equity", "g_gross")]

    def finish(self, state, symbols: list[str], ev: dict, tf: pd.Timedelta) -> SimResult:
        """Turn the filled buffers into frames; counters in the state say how many rows."""
        b, pi = self._buffers, state.port_i

        def table(ikey, fkey, icols, fcols, n):
            frame = pd.DataFrame(b[ikey][:n], columns=list(icols))
            for j, col in enumerate(fcols):
                frame[col] = b[fkey][:n, j]
            return frame

        # counters are cumulative over segments: this segment's rows start at zero because
        # each call gets fresh buffers, so the kernel's counters are reset below
        tr = table("tr_i", "tr_f", K.TR_I, K.TR_F, pi[K.N_TR])
        tr["symbol"] = _labels(tr.pop("sym").to_numpy(), symbols)
        tr["side"] = tr["side"].astype(np.int8)
        tr["exit_reason"] = _labels(tr["exit_reason"].to_numpy(), K.REASONS)
        for col in ("decision_ts", "entry_ts", "exit_ts"):
            tr[col.replace("_ts", "_time")] = _stamp(tr.pop(col).to_numpy())
        self.trades = tr[["symbol", "side", "qty", "decision_time", "entry_time", "exit_time",
                          "bars_held", "exit_reason", "entry_ref", "entry_fill", "exit_ref",
                          "exit_fill", "gross_return", "cost_return", "net_return", "net_pnl",
                          "commission", "slippage", "entry_order"]]
        fi = table("fi_i", "fi_f", K.FI_I, K.FI_F, pi[K.N_FI])
        fi.insert(0, "time", _stamp(fi.pop("ts").to_numpy()))
        fi["symbol"] = _labels(fi.pop("sym").to_numpy(), symbols)
        fi["reason"] = _labels(fi["reason"].to_numpy(), K.REASONS)
        self.fills = fi
        od = table("or_i", "or_f", K.OR_I, K.OR_F, pi[K.N_OR])
        od["symbol"] = _labels(od.pop("sym").to_numpy(), symbols)
        od["reason"] = _labels(od["reason"].to_numpy(), K.REASONS)
        od["status"] = _labels(od["status"].to_numpy(), K.STATUS)
        for col in ("created_ts", "arrival_ts"):
            od[col.replace("_ts", "_time")] = _stamp(od.pop(col).to_numpy())
        fill_ts = od.pop("fill_ts").to_numpy()
        od["fill_time"] = _stamp(np.where(fill_ts < 0, np.iinfo(np.int64).min, fill_ts))
        self.orders = od
        evt = table("ev_i", "ev_f", K.EV_I, K.EV_F, pi[K.N_EV])
        evt.insert(0, "time", _stamp(evt.pop("ts").to_numpy()))
        evt["kind"] = _labels(evt["kind"].to_numpy(), K.EVENTS)
        evt["symbol"] = _labels(evt.pop("sym").to_numpy(), symbols)  # -1: the portfolio
        self.events = evt
        self.positions = pd.DataFrame({
            "timestamp": _stamp(ev["ts"]), "symbol": _labels(ev["sym"], symbols, True),
            "position": b["bar_pos"], "pnl": b["bar_pnl"]}, copy=False)
        g_ts = _stamp(ev["ts"][ev["g_start"][:-1]])
        pnl_g = np.add.reduceat(b["bar_pnl"], ev["g_start"][:-1]) if ev["n"] else np.zeros(0)
        self.equity = pd.DataFrame({"equity": b["g_equity"], "pnl": pnl_g,
                                    "gross_notional": b["g_gross"]},
                                   index=pd.DatetimeIndex(g_ts, name="timestamp"), copy=False)
        self.summary = {
            "symbols": symbols, "timeframe": str(tf), "bars": int(ev["n"]),
            "final_equity": float(state.port_f[K.EQUITY]),
            "commission_paid": float(state.port_f[K.COMM_PAID]),
            "slippage_paid": float(state.port_f[K.SLIP_PAID]),
            "killed": bool(pi[K.KILLED]), "skipped_zero_size": int(pi[K.N_SKIPPED]),
            "open_positions": state.positions(),
        }
        for k in (K.N_TR, K.N_FI, K.N_OR, K.N_EV, K.N_SKIPPED):
            pi[k] = 0
        state.port_f[[K.COMM_PAID, K.SLIP_PAID]] = 0.0
        self._buffers = None
        return self

    # ---- several segments
    @classmethod
    def concat(cls, parts: list[SimResult], initial_capital: float) -> SimResult:
        """One result from consecutive segments' results (walk-forward runs)."""
        def cat(name):
            frames = [getattr(p, name) for p in parts if len(getattr(p, name))]
            return pd.concat(frames, ignore_index=name != "equity") if frames else \
                getattr(parts[0], name)

        last = parts[-1].summary
        summary = {**last, "bars": sum(p.summary["bars"] for p in parts),
                   "commission_paid": sum(p.summary["commission_paid"] for p in parts),
                   "slippage_paid": sum(p.summary["slippage_paid"] for p in parts),
                   "skipped_zero_size": sum(p.summary["skipped_zero_size"] for p in parts),
                   "segments": len(parts)}
        orders = cat("orders")  # an order pending at a cut is listed again in the next part
        if len(orders):
            orders = orders.drop_duplicates("order_id", keep="last").reset_index(drop=True)
        out = cls(cat("trades"), cat("fills"), orders, cat("events"), cat("positions"),
                  cat("equity"), summary)
        out.summary["initial_capital"] = initial_capital
        return out

    def save(self, path: Path) -> list[str]:
        """Write every frame as parquet plus ``summary.json``; returns the file names."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        names = []
        for name in ("trades", "fills", "orders", "events", "positions", "equity"):
            frame = getattr(self, name)
            frame.to_parquet(path / f"{name}.parquet", index=name == "equity")
            names.append(f"{name}.parquet")
        (path / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str))
        return [*names, "summary.json"]
