"""The compiled trading loop: one pass over the bars of every symbol, in time order.

The loop walks *groups*: all symbols' bars that share one open stamp. Each group runs in
three phases, so every symbol sees the same portfolio state:

A. per symbol bar: fill the pending order once it has arrived (the bar's open, or a point
   inside the bar for a latency that ends mid-bar); check the bracket (barriers, vertical
   barrier) of an open trade; mark the position to the close; flatten at the session end
   when asked; update the volatility estimate with the bar's close.
B. portfolio: equity, peak, session start; the drawdown kill switch and the daily loss
   limit (each flattens through ordinary orders, so latency applies to them too).
C. per symbol bar: the decision at the bar's close becomes an order (sized, capped). A
   portfolio (``factory/portfolio``) adds three hooks here: ``weight`` sizing (the event's
   ``q`` is a notional weight: contracts = floor(q x equity / (point value x close))), a
   net-exposure cap, and a correlation filter (no entry that adds to a held position's
   exposure through a correlation above a threshold; the matrices are given per block of
   time, ``ev_block`` says which one a bar uses, -1 none).

Everything the loop carries between bars lives in four small arrays (``sym_f``, ``sym_i``,
``port_f``, ``port_i``; the column constants below), so a run can stop after any bar and
continue later with the same arrays: the walk-forward driver calls it segment by segment.
Outputs are written into preallocated record arrays (trades, fills, orders, limit events)
whose row counters live in ``port_i``.

Barrier arithmetic is the labeling kernel's (``factory/labeling/kernel.py``) operation for
operation (``up = entry + width``, gap fills at the open, an ambiguous bar stops each side,
``ret_long = exit / entry - 1``, ``ret_short = 1 - exit / entry``), so the research
backtest's trades and returns come out bit for bit (``tests/test_sim_consistency.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# --- per-symbol float state (sym_f columns)
POS, ENTRY_FILL, ENTRY_REF, UP, DN, MARK, PEND_TARGET, PEND_WUP, PEND_WDN = range(9)
ENTRY_SLIP, ENTRY_COMM, VAR, PREV_CLOSE, LAST_CLOSE = range(9, 14)
N_SYM_F = 14
# --- per-symbol int state (sym_i columns)
HELD, PEND_ACTIVE, PEND_ARRIVAL, PEND_REASON, PEND_ORDER, ENTRY_TS, DECISION_TS = range(7)
N_VOL, PEND_DECISION_TS, ENTRY_ORDER, PEND_ID = range(7, 11)
N_SYM_I = 11
# --- portfolio float state (port_f)
EQUITY, PEAK, SESSION_EQ, COMM_PAID, SLIP_PAID = range(5)
N_PORT_F = 5
# --- portfolio int state (port_i): flags, the last stamp seen, record counters
KILLED, BLOCKED, LAST_TS, N_TR, N_FI, N_OR, N_EV, NEXT_ORDER, N_SKIPPED, HAS_LAST = range(10)
N_PORT_I = 10

# --- int parameters (params_i) and float parameters (params_f)
P_TF_NS, P_LATENCY_NS, P_HORIZON, P_EXIT, P_FLAT_CLOSES, P_SIZING, P_FLAT_EOD = range(7)
P_SLIP_MODE, P_VOL_MIN = range(7, 9)
N_PARAMS_I = 9
F_ALPHA, F_BARS_PER_SESSION, F_VOL_TARGET, F_MAX_DD, F_DAILY_LOSS, F_GROSS_CAP = range(6)
F_SLIP_MULT, F_SLIP_MIN_TICKS, F_NET_CAP, F_CORR_MAX = range(6, 10)
N_PARAMS_F = 10

EXIT_BARRIER, EXIT_SIGNAL = 0, 1
SIZING_FIXED, SIZING_VOL, SIZING_PROBA, SIZING_WEIGHT = 0, 1, 2, 3
SLIP_FIXED, SLIP_VOL = 0, 1

# --- reasons (fills, orders, trades) and limit-event kinds; names in REASONS / EVENTS
R_ENTRY, R_SIGNAL, R_UPPER, R_LOWER, R_AMBIGUOUS, R_VERTICAL = range(6)
R_SESSION_END, R_KILL, R_DAILY = range(6, 9)
REASONS = ("entry", "signal", "upper", "lower", "ambiguous", "vertical", "session_end",
           "kill_switch", "daily_loss")
E_KILL, E_DAILY, E_GROSS_CAP, E_SESSION_FLAT, E_RESUME, E_NET_CAP, E_CORR = range(7)
EVENTS = ("kill_switch", "daily_loss", "gross_cap", "session_flat", "resume", "net_cap",
          "correlation")
ST_PENDING, ST_FILLED, ST_CANCELLED, ST_VOID = range(4)
STATUS = ("pending", "filled", "cancelled", "void")

# record layouts (columns of the int / float record arrays)
TR_I = ("sym", "side", "decision_ts", "entry_ts", "exit_ts", "bars_held", "exit_reason",
        "entry_order")
TR_F = ("qty", "entry_ref", "entry_fill", "exit_ref", "exit_fill", "gross_return",
        "cost_return", "net_return", "net_pnl", "commission", "slippage")
FI_I = ("ts", "sym", "order_id", "reason")
FI_F = ("qty", "ref_price", "price", "slippage_points", "commission")
OR_I = ("order_id", "sym", "created_ts", "arrival_ts", "reason", "status", "fill_ts")
OR_F = ("target", "fill_price")
EV_I = ("ts", "kind", "sym")
EV_F = ("value", "limit")


@njit(cache=True)
def _event(port_i, ev_i, ev_f, ts, kind, sym, value, limit):  # pragma: no cover (compiled)
    k = port_i[N_EV]
    ev_i[k, 0], ev_i[k, 1], ev_i[k, 2] = ts, kind, sym
    ev_f[k, 0], ev_f[k, 1] = value, limit
    port_i[N_EV] = k + 1


@njit(cache=True)
def _fill(port_i, port_f, fi_i, fi_f, ts, s, order_id, reason, qty, ref, price, slip,
          commission):  # pragma: no cover (compiled)
    k = port_i[N_FI]
    fi_i[k, 0], fi_i[k, 1], fi_i[k, 2], fi_i[k, 3] = ts, s, order_id, reason
    fi_f[k, 0], fi_f[k, 1], fi_f[k, 2], fi_f[k, 3], fi_f[k, 4] = qty, ref, price, slip, commission
    port_i[N_FI] = k + 1
    port_f[COMM_PAID] += commission


@njit(cache=True)
def _open(s, side, qty, ref, slip, bar_ts, fill_ts, wup, wdn, decision_ts, order_id, comm,
          pv, sym_f, sym_i, port_i, port_f, fi_i, fi_f):  # pragma: no cover (compiled)
    """Open a trade of ``side * qty`` at reference price ``ref``; returns the cash flow."""
    price = ref + side * slip
    c = comm * qty
    _fill(port_i, port_f, fi_i, fi_f, fill_ts, s, order_id, R_ENTRY, side * qty, ref, price,
          slip, c)
    sym_f[s, POS] = side * qty
    sym_f[s, ENTRY_REF], sym_f[s, ENTRY_FILL], sym_f[s, MARK] = ref, price, price
    sym_f[s, UP], sym_f[s, DN] = ref + wup, ref - wdn
    sym_f[s, ENTRY_SLIP], sym_f[s, ENTRY_COMM] = slip, c
    sym_i[s, HELD], sym_i[s, ENTRY_TS], sym_i[s, DECISION_TS] = 0, bar_ts, decision_ts
    sym_i[s, ENTRY_ORDER] = order_id
    port_f[SLIP_PAID] += slip * qty * pv
    return -c


@njit(cache=True)
def _close(s, ref, slip, reason, bar_ts, fill_ts, order_id, comm, pv, sym_f, sym_i, port_i,
           port_f, fi_i, fi_f, tr_i, tr_f):  # pragma: no cover (compiled)
    """Close the open trade at reference price ``ref``; returns the cash flow (mark + cost)."""
    pos = sym_f[s, POS]
    side = 1.0 if pos > 0 else -1.0
    qty = abs(pos)
    price = ref - side * slip
    c = comm * qty
    _fill(port_i, port_f, fi_i, fi_f, fill_ts, s, order_id, reason, -pos, ref, price, slip, c)
    port_f[SLIP_PAID] += slip * qty * pv
    flow = pos * pv * (price - sym_f[s, MARK]) - c
    entry = sym_f[s, ENTRY_REF]
    # the labeling kernel's expressions: one division, then the side's form
    q = ref / entry
    gross = q - 1.0 if side > 0 else 1.0 - q
    cost = ((sym_f[s, ENTRY_SLIP] + slip) + 2.0 * (comm / pv)) / entry
    k = port_i[N_TR]
    tr_i[k, 0], tr_i[k, 1], tr_i[k, 2] = s, int(side), sym_i[s, DECISION_TS]
    tr_i[k, 3], tr_i[k, 4], tr_i[k, 5] = sym_i[s, ENTRY_TS], bar_ts, sym_i[s, HELD]
    tr_i[k, 6], tr_i[k, 7] = reason, sym_i[s, ENTRY_ORDER]
    tr_f[k, 0], tr_f[k, 1], tr_f[k, 2], tr_f[k, 3] = qty, entry, sym_f[s, ENTRY_FILL], ref
    tr_f[k, 4], tr_f[k, 5], tr_f[k, 6], tr_f[k, 7] = price, gross, cost, gross - cost
    tr_f[k, 8] = pos * pv * (price - sym_f[s, ENTRY_FILL]) - sym_f[s, ENTRY_COMM] - c
    tr_f[k, 9] = sym_f[s, ENTRY_COMM] + c
    tr_f[k, 10] = (sym_f[s, ENTRY_SLIP] + slip) * qty * pv
    port_i[N_TR] = k + 1
    sym_f[s, POS] = 0.0
    return flow


@njit(cache=True)
def _order(s, target, reason, created, arrival, wup, wdn, sym_f, sym_i, port_i, or_i, or_f
           ):  # pragma: no cover (compiled)
    """Send a market order for target position ``target`` (replacing a pending one)."""
    if sym_i[s, PEND_ACTIVE] == 1:
        or_i[sym_i[s, PEND_ORDER], 5] = ST_CANCELLED
    k = port_i[N_OR]
    or_i[k, 0], or_i[k, 1], or_i[k, 2], or_i[k, 3] = port_i[NEXT_ORDER], s, created, arrival
    or_i[k, 4], or_i[k, 5], or_i[k, 6] = reason, ST_PENDING, -1
    or_f[k, 0], or_f[k, 1] = target, np.nan
    port_i[N_OR] = k + 1
    port_i[NEXT_ORDER] += 1
    sym_i[s, PEND_ACTIVE], sym_i[s, PEND_ARRIVAL], sym_i[s, PEND_REASON] = 1, arrival, reason
    sym_i[s, PEND_ORDER], sym_i[s, PEND_DECISION_TS] = k, created
    sym_i[s, PEND_ID] = or_i[k, 0]
    sym_f[s, PEND_TARGET], sym_f[s, PEND_WUP], sym_f[s, PEND_WDN] = target, wup, wdn


@njit(cache=True)
def carry_pending(sym_f, sym_i, port_i, or_i, or_f):  # pragma: no cover (compiled)
    """Re-list orders still pending from a previous segment in this segment's buffers."""
    for s in range(sym_f.shape[0]):
        if sym_i[s, PEND_ACTIVE] == 1:
            k = port_i[N_OR]
            or_i[k, 0], or_i[k, 1], or_i[k, 2] = sym_i[s, PEND_ID], s, sym_i[s, PEND_DECISION_TS]
            or_i[k, 3], or_i[k, 4] = sym_i[s, PEND_ARRIVAL], sym_i[s, PEND_REASON]
            or_i[k, 5], or_i[k, 6] = ST_PENDING, -1
            or_f[k, 0], or_f[k, 1] = sym_f[s, PEND_TARGET], np.nan
            sym_i[s, PEND_ORDER] = k
            port_i[N_OR] = k + 1


@njit(cache=True)
def _flatten_all(kind_reason, created, arrival, n_sym, sym_f, sym_i, port_i, or_i, or_f
                 ):  # pragma: no cover (compiled)
    for s in range(n_sym):
        if sym_f[s, POS] != 0.0:
            _order(s, 0.0, kind_reason, created, arrival, 0.0, 0.0, sym_f, sym_i, port_i,
                   or_i, or_f)
        elif sym_i[s, PEND_ACTIVE] == 1:
            or_i[sym_i[s, PEND_ORDER], 5] = ST_CANCELLED
            sym_i[s, PEND_ACTIVE] = 0


@njit(cache=True)
def _slippage(s, slip_mode, base_ticks, tick, mult, min_ticks, vol_min, sym_f, sym_i
              ):  # pragma: no cover (compiled)
    """Slippage in price points for a fill now (volatility known before this bar)."""
    if slip_mode == SLIP_VOL and sym_i[s, N_VOL] >= vol_min:
        sigma_pts = math.sqrt(sym_f[s, VAR]) * sym_f[s, PREV_CLOSE]
        return max(min_ticks, float(np.round(mult * sigma_pts / tick))) * tick
    return base_ticks[s] * tick


@njit(cache=True)
def simulate(ev_sym, ev_ts, ev_o, ev_h, ev_l, ev_c, ev_last, ev_valid, ev_side, ev_q, ev_wup,
             ev_wdn, g_start, g_new_session, pv, tick, comm, max_pos, base_ticks, params_i,
             params_f, sym_f, sym_i, port_f, port_i, tr_i, tr_f, fi_i, fi_f, or_i, or_f, ev_i,
             ev_f, bar_pos, bar_pnl, g_equity, g_gross, ev_block, corr
             ):  # pragma: no cover (compiled)
    """Run the bars of one segment; state arrays are updated in place (see module docs)."""
    n_sym = sym_f.shape[0]
    tf = params_i[P_TF_NS]
    latency = params_i[P_LATENCY_NS]
    horizon = params_i[P_HORIZON]
    exit_mode = params_i[P_EXIT]
    sizing = params_i[P_SIZING]
    slip_mode = params_i[P_SLIP_MODE]
    vol_min = params_i[P_VOL_MIN]
    alpha = params_f[F_ALPHA]
    max_dd, daily_loss = params_f[F_MAX_DD], params_f[F_DAILY_LOSS]
    gross_cap = params_f[F_GROSS_CAP]
    net_cap, corr_max = params_f[F_NET_CAP], params_f[F_CORR_MAX]
    n_groups = len(g_start) - 1
    for g in range(n_groups):
        a, b = g_start[g], g_start[g + 1]
        ts = ev_ts[a]
        if g_new_session[g]:
            port_f[SESSION_EQ] = port_f[EQUITY]
            if port_i[BLOCKED] == 1:
                port_i[BLOCKED] = 0
                _event(port_i, ev_i, ev_f, ts, E_RESUME, -1, port_f[EQUITY], np.nan)
        flow = 0.0
        # ---- phase A: fills, bracket exits, marks
        for e in range(a, b):
            s = ev_sym[e]
            o, h, lo, c = ev_o[e], ev_h[e], ev_l[e], ev_c[e]
            pnl = 0.0
            slip = _slippage(s, slip_mode, base_ticks, tick[s], params_f[F_SLIP_MULT],
                             params_f[F_SLIP_MIN_TICKS], vol_min, sym_f, sym_i)
            if sym_i[s, PEND_ACTIVE] == 1 and ts + tf > sym_i[s, PEND_ARRIVAL]:
                arrival = sym_i[s, PEND_ARRIVAL]
                if ts >= arrival:
                    ref, fill_ts = o, ts
                else:  # the order arrives inside this bar: a point on its open-close path
                    ref = o + (arrival - ts) / tf * (c - o)
                    fill_ts = arrival
                k = sym_i[s, PEND_ORDER]
                target = sym_f[s, PEND_TARGET]
                pos = sym_f[s, POS]
                sym_i[s, PEND_ACTIVE] = 0
                changes = (pos > 0) != (target > 0) or (pos < 0) != (target < 0)
                if not changes:
                    or_i[k, 5] = ST_VOID
                else:
                    oid = sym_i[s, PEND_ID]
                    if pos != 0.0:
                        pnl += _close(s, ref, slip, sym_i[s, PEND_REASON], ts, fill_ts, oid,
                                      comm[s], pv[s], sym_f, sym_i, port_i, port_f, fi_i, fi_f,
                                      tr_i, tr_f)
                    if target != 0.0:
                        side = 1.0 if target > 0 else -1.0
                        pnl += _open(s, side, abs(target), ref, slip, ts, fill_ts,
                                     sym_f[s, PEND_WUP], sym_f[s, PEND_WDN],
                                     sym_i[s, PEND_DECISION_TS], oid, comm[s], pv[s], sym_f,
                                     sym_i, port_i, port_f, fi_i, fi_f)
                    or_i[k, 5], or_i[k, 6], or_f[k, 1] = ST_FILLED, fill_ts, ref
            pos = sym_f[s, POS]
            if pos != 0.0:
                sym_i[s, HELD] += 1
            if pos != 0.0 and exit_mode == EXIT_BARRIER:
                up, dn = sym_f[s, UP], sym_f[s, DN]
                hit_up, hit_dn = h >= up, lo <= dn
                reason, ref = -1, 0.0
                if hit_up or hit_dn:
                    if hit_up and (not hit_dn or o >= up):
                        reason, ref = R_UPPER, (o if o >= up else up)
                    elif hit_dn and (not hit_up or o <= dn):
                        reason, ref = R_LOWER, (o if o <= dn else dn)
                    else:  # both in one bar, open inside: the side is stopped
                        reason, ref = R_AMBIGUOUS, (dn if pos > 0 else up)
                elif sym_i[s, HELD] >= horizon:
                    reason, ref = R_VERTICAL, c
                if reason >= 0:
                    fill_ts = ts if reason != R_VERTICAL else ts + tf
                    pnl += _close(s, ref, slip, reason, ts, fill_ts, -1, comm[s], pv[s], sym_f,
                                  sym_i, port_i, port_f, fi_i, fi_f, tr_i, tr_f)
            pos = sym_f[s, POS]
            if pos != 0.0:
                pnl += pos * pv[s] * (c - sym_f[s, MARK])
                sym_f[s, MARK] = c
                if params_i[P_FLAT_EOD] == 1 and ev_last[e]:
                    _event(port_i, ev_i, ev_f, ts + tf, E_SESSION_FLAT, s, pos, 0.0)
                    pnl += _close(s, c, slip, R_SESSION_END, ts, ts + tf, -1, comm[s], pv[s],
                                  sym_f, sym_i, port_i, port_f, fi_i, fi_f, tr_i, tr_f)
            # volatility: EWMA of squared log returns, this bar's close included
            if sym_f[s, PREV_CLOSE] > 0.0:
                r = math.log(c / sym_f[s, PREV_CLOSE])
                if sym_i[s, N_VOL] == 0:
                    sym_f[s, VAR] = r * r
                else:
                    sym_f[s, VAR] = (1.0 - alpha) * sym_f[s, VAR] + alpha * r * r
                sym_i[s, N_VOL] += 1
            sym_f[s, PREV_CLOSE] = c
            sym_f[s, LAST_CLOSE] = c
            bar_pos[e] = sym_f[s, POS]
            bar_pnl[e] = pnl
            flow += pnl
        port_i[LAST_TS] = ts
        port_i[HAS_LAST] = 1
        # ---- phase B: portfolio and risk limits (at the group's close)
        close_ts = ts + tf
        eq = port_f[EQUITY] + flow
        port_f[EQUITY] = eq
        if eq > port_f[PEAK]:
            port_f[PEAK] = eq
        if port_i[KILLED] == 0 and not np.isnan(max_dd):
            dd = eq / port_f[PEAK] - 1.0
            if dd <= -max_dd:
                port_i[KILLED] = 1
                _event(port_i, ev_i, ev_f, close_ts, E_KILL, -1, dd, -max_dd)
                _flatten_all(R_KILL, close_ts, close_ts + latency, n_sym, sym_f, sym_i,
                             port_i, or_i, or_f)
        if port_i[KILLED] == 0 and port_i[BLOCKED] == 0 and not np.isnan(daily_loss):
            loss = eq / port_f[SESSION_EQ] - 1.0
            if loss <= -daily_loss:
                port_i[BLOCKED] = 1
                _event(port_i, ev_i, ev_f, close_ts, E_DAILY, -1, loss, -daily_loss)
                _flatten_all(R_DAILY, close_ts, close_ts + latency, n_sym, sym_f, sym_i,
                             port_i, or_i, or_f)
        # ---- phase C: decisions at the close become orders
        gross, held_gross, net = 0.0, 0.0, 0.0
        for s in range(n_sym):
            committed = sym_f[s, PEND_TARGET] if sym_i[s, PEND_ACTIVE] == 1 else sym_f[s, POS]
            gross += abs(committed) * pv[s] * sym_f[s, LAST_CLOSE]
            net += committed * pv[s] * sym_f[s, LAST_CLOSE]
            held_gross += abs(sym_f[s, POS]) * pv[s] * sym_f[s, LAST_CLOSE]
        g_equity[g] = eq
        g_gross[g] = held_gross
        if port_i[KILLED] == 1 or port_i[BLOCKED] == 1:
            continue
        for e in range(a, b):
            if not ev_valid[e]:
                continue
            s = ev_sym[e]
            want = ev_side[e]
            pending = sym_i[s, PEND_ACTIVE] == 1
            if exit_mode == EXIT_BARRIER:
                if want == 0 or sym_f[s, POS] != 0.0 or pending:
                    continue
            else:
                if want == 0 and params_i[P_FLAT_CLOSES] == 0:
                    continue
                held = sym_f[s, PEND_TARGET] if pending else sym_f[s, POS]
                held_side = 1 if held > 0 else (-1 if held < 0 else 0)
                if want == held_side:
                    continue
                if want == 0:
                    _order(s, 0.0, R_SIGNAL, close_ts, close_ts + latency, 0.0, 0.0, sym_f,
                           sym_i, port_i, or_i, or_f)
                    continue
            c = ev_c[e]
            if sizing == SIZING_VOL:
                sigma_day = math.sqrt(sym_f[s, VAR] * params_f[F_BARS_PER_SESSION])
                ok = sym_i[s, N_VOL] >= vol_min and sigma_day > 0.0 and eq > 0.0
                qty = math.floor(params_f[F_VOL_TARGET] * eq / (pv[s] * c * sigma_day)) if ok \
                    else 0.0
            elif sizing == SIZING_WEIGHT:  # a notional weight (NaN or <= 0: no trade)
                w = ev_q[e]
                qty = math.floor(w * eq / (pv[s] * c)) if w > 0.0 and eq > 0.0 else 0.0
            else:
                qty = ev_q[e]
            qty = min(qty, max_pos[s])
            committed = sym_f[s, PEND_TARGET] if pending else sym_f[s, POS]
            blk = ev_block[e]
            if not np.isnan(corr_max) and blk >= 0 and qty > 0.0:
                for j in range(n_sym):  # exposure added to a held one through correlation
                    other = sym_f[j, PEND_TARGET] if sym_i[j, PEND_ACTIVE] == 1 else \
                        sym_f[j, POS]
                    if j == s or other == 0.0:
                        continue
                    rho = corr[blk, s, j] * (1.0 if other > 0 else -1.0) * want
                    if rho > corr_max:
                        _event(port_i, ev_i, ev_f, close_ts, E_CORR, s, rho, corr_max)
                        qty = -1.0  # blocked: no order, not a zero size
                        break
            if not np.isnan(gross_cap) and qty >= 0.0:
                others = gross - abs(committed) * pv[s] * c
                room = math.floor((gross_cap * eq - others) / (pv[s] * c))
                if room < qty:
                    _event(port_i, ev_i, ev_f, close_ts, E_GROSS_CAP, s, qty, max(room, 0.0))
                    qty = max(room, 0.0)
            if not np.isnan(net_cap) and qty > 0.0:
                others = net - committed * pv[s] * c
                room = math.floor((net_cap * eq - want * others) / (pv[s] * c))
                if room < qty:
                    _event(port_i, ev_i, ev_f, close_ts, E_NET_CAP, s, qty, max(room, 0.0))
                    qty = max(room, 0.0)
            if qty <= 0.0:
                if qty == 0.0:
                    port_i[N_SKIPPED] += 1
                if exit_mode == EXIT_SIGNAL and (sym_f[s, POS] != 0.0 or pending):
                    _order(s, 0.0, R_SIGNAL, close_ts, close_ts + latency, 0.0, 0.0, sym_f,
                           sym_i, port_i, or_i, or_f)  # the old view is gone: go flat
                continue
            target = want * qty
            reason = R_ENTRY if exit_mode == EXIT_BARRIER else R_SIGNAL
            _order(s, target, reason, close_ts, close_ts + latency, ev_wup[e], ev_wdn[e], sym_f,
                   sym_i, port_i, or_i, or_f)
            gross += (qty - abs(committed)) * pv[s] * c
            net += (target - committed) * pv[s] * c
