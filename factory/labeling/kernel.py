"""Compiled triple-barrier kernel: one search per event for the first touching bar.

The numpy version (:func:`factory.labeling.triple_barrier.triple_barrier`) builds n x horizon
window matrices and scans all of them. Here each event looks only at its own window, with
nothing materialised: the first touching bar is found by a branch-free minimum over the
window's first ``SCAN`` bars (LLVM vectorises it, and there is no unpredictable loop exit
to mispredict, which measured faster than stopping at the touch for 20-bar windows), then,
for longer horizons, bar by bar stopping at the first touch. Several horizons share that
search: it runs once for the longest horizon, and each shorter horizon h reuses it (a touch
by bar t+h is the same exit, anything later becomes h's vertical barrier).

Semantics (timing, gap fills, ambiguity, costs) are those of the module docstring of
``triple_barrier.py``, and every arithmetic step is the numpy version's (no fastmath, so no
reassociation or fused multiply-add): results are bit-identical, which
``tests/test_labeling.py`` checks on random paths with gaps, ambiguous bars and NaN widths.

Speed: at 1M bars writing the 34 MB of outputs (fresh pages the OS must zero) costs about as
much as the search. The kernel releases the GIL (``nogil``) and events are split into
contiguous chunks over a few threads (one per usable core, at most ``MAX_THREADS``, none
below ``MIN_EVENTS_PER_THREAD`` events), so page faults, memory traffic and the search all
run in parallel. Plain Python threads rather than numba's ``parallel=True``: no threading
layer (OpenMP/TBB) to clash with the models' runtimes, and safe under fork and concurrent
callers. Results do not depend on the split (tested).

``cache=True`` stores the machine code next to this file (``__pycache__``): only the first
call on a machine compiles (about a second); later interpreters load it in a few tenths of a
second (cold and warm figures in the 1c benchmark).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
from numba import njit

from factory.errors import FactoryError
from factory.threads import resolve_threads

LABEL_COLUMNS = ("label", "exit_idx", "ret_long", "ret_short", "cost", "touch")
MAX_THREADS = 8
MIN_EVENTS_PER_THREAD = 100_000
SCAN = 32  # bars searched branch-free before walking bar by bar (horizons beyond 32)


@njit(cache=True, nogil=True)
def _walk(open_, high, low, close, width_up, width_dn, h, cost_points, sign_vertical,
          t_start, t_stop, label, exit_idx, ret_long, ret_short, cost,
          touch):  # pragma: no cover (compiled)
    """Label events t_start .. t_stop-1 for horizon ``h`` (every window must be complete)."""
    for t in range(t_start, t_stop):
        entry = open_[t + 1]
        up = entry + width_up[t]
        dn = entry - width_dn[t]
        # first touching bar: a branch-free minimum over the first SCAN bars (vectorised,
        # no unpredictable loop exit), then bar by bar for long horizons
        span = min(h, SCAN)
        hh = high[t + 1: t + 1 + span]
        ll = low[t + 1: t + 1 + span]
        f = h
        for k in range(span):
            hit = (hh[k] >= up) | (ll[k] <= dn)
            f = min(f, k if hit else h)
        if f == h and h > SCAN:
            for k in range(t + 1 + SCAN, t + h + 1):
                if high[k] >= up or low[k] <= dn:
                    f = k - t - 1
                    break
        side, j, x_long, x_short = 0, t + h, close[t + h], close[t + h]  # vertical barrier
        if f < h:
            j = t + 1 + f
            hit_up = high[j] >= up
            hit_dn = low[j] <= dn
            o = open_[j]
            if hit_up and (not hit_dn or o >= up):
                side = 1
                x_long = o if o >= up else up  # a gapped open fills at the open
                x_short = x_long
            elif hit_dn and (not hit_up or o <= dn):
                side = -1
                x_long = o if o <= dn else dn
                x_short = x_long
            else:  # both in one bar, open inside: each side assumed stopped
                side, x_long, x_short = 2, dn, up
        k_cost = cost_points / entry
        q = x_long / entry  # one division serves both sides unless ambiguous
        rl = q - 1.0
        rs = 1.0 - (x_short / entry if side == 2 else q)
        lab = 0
        if side == 1:
            if rl - k_cost > 0:
                lab = 1
        elif side == -1:
            if rs - k_cost > 0:
                lab = -1
        elif side == 0 and sign_vertical:
            if rl - k_cost > 0:
                lab = 1
            elif rs - k_cost > 0:
                lab = -1
        label[t], exit_idx[t], touch[t] = lab, j, side
        ret_long[t], ret_short[t], cost[t] = rl, rs, k_cost


@njit(cache=True, nogil=True)
def _shorter(open_, close, h, sign_vertical, t_start, t_stop, src_label, src_exit, src_ret_long,
             src_ret_short, src_cost, src_touch, label, exit_idx, ret_long, ret_short, cost,
             touch):  # pragma: no cover (compiled)
    """Horizon ``h`` from a longer horizon's walk: a touch by bar t+h is the same exit,
    anything later is this horizon's vertical barrier (close of bar t+h)."""
    for t in range(t_start, t_stop):
        k_cost = src_cost[t]
        if src_touch[t] != 0 and src_exit[t] <= t + h:
            label[t], exit_idx[t], touch[t] = src_label[t], src_exit[t], src_touch[t]
            ret_long[t], ret_short[t], cost[t] = src_ret_long[t], src_ret_short[t], k_cost
            continue
        q = close[t + h] / open_[t + 1]
        rl = q - 1.0
        rs = 1.0 - q
        lab = 0
        if sign_vertical:
            if rl - k_cost > 0:
                lab = 1
            elif rs - k_cost > 0:
                lab = -1
        label[t], exit_idx[t], touch[t] = lab, t + h, 0
        ret_long[t], ret_short[t], cost[t] = rl, rs, k_cost


def check_horizons(horizons) -> np.ndarray:
    """Sorted unique horizons as int64; FactoryError naming ``labeling.horizons`` if bad."""
    scalar = isinstance(horizons, str | bytes | int | float | np.integer)
    hs = [horizons] if scalar else list(horizons)
    bad = [h for h in hs if isinstance(h, bool) or not isinstance(h, int | np.integer) or h <= 0]
    if not hs or bad:
        raise FactoryError(
            f"`labeling.horizons` must be a list of positive ints, got {horizons!r} "
            "(try `labeling.horizons=[5,10,15,20]`)"
        )
    return np.asarray(sorted({int(h) for h in hs}), np.int64)


def _readonly(a) -> np.ndarray:
    """Contiguous float64 read-only view: one compiled signature whether the caller passes
    writable arrays or pandas' read-only ones (each signature is a separate compile)."""
    view = np.ascontiguousarray(a, np.float64).view()
    view.flags.writeable = False
    return view


def _n_threads(n_events: int) -> int:
    return max(1, min(resolve_threads(), MAX_THREADS, n_events // MIN_EVENTS_PER_THREAD))


def triple_barrier_multi(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    width_up: np.ndarray,
    width_dn: np.ndarray,
    horizons=(5, 10, 15, 20),
    cost_points: float = 0.0,
    vertical: str = "zero",
    threads: int | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Labels for several horizons in one walk: ``{h: {column: array}}``.

    Each per-horizon dict equals ``triple_barrier(..., horizon=h)`` bit for bit (same
    columns, dtypes and NaN/-1 tail), whatever the number of ``threads`` (None = automatic).
    """
    if vertical not in ("zero", "sign"):
        raise FactoryError(f"`labeling.vertical` must be 'zero' or 'sign', got {vertical!r}")
    hs = check_horizons(horizons)
    arrays = [_readonly(a) for a in (open_, high, low, close, width_up, width_dn)]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"open/high/low/close/width arrays differ in length: "
                         f"{[len(a) for a in arrays]}")
    o, c = arrays[0], arrays[3]
    n, n_h, h_max = len(c), len(hs), int(hs[-1])
    out = {k: np.empty((n_h, n), np.int8 if k in ("label", "touch") else
                       np.int64 if k == "exit_idx" else np.float64) for k in LABEL_COLUMNS}
    rows = [[out[k][i] for k in LABEL_COLUMNS] for i in range(n_h)]
    sign = vertical == "sign"
    m_full = max(n - h_max, 0)  # events whose longest window is complete

    def chunk(a: int, b: int) -> None:
        _walk(*arrays, h_max, float(cost_points), sign, a, b, *rows[-1])
        for i in range(n_h - 1):
            _shorter(o, c, int(hs[i]), sign, a, b, *rows[-1], *rows[i])

    n_threads = _n_threads(m_full) if threads is None else max(1, int(threads))
    bounds = np.linspace(0, m_full, n_threads + 1).astype(np.int64).tolist()
    if n_threads == 1:
        chunk(0, m_full)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            for job in [pool.submit(chunk, a, b) for a, b in pairwise(bounds)]:
                job.result()
    for i, h in enumerate(hs.tolist()):
        stop = max(n - h, 0)
        if i < n_h - 1 and stop > m_full:  # complete for h, not for the longest horizon
            _walk(*arrays, h, float(cost_points), sign, m_full, stop, *rows[i])
        out["label"][i, stop:], out["exit_idx"][i, stop:], out["touch"][i, stop:] = 0, -1, 0
        for k in ("ret_long", "ret_short", "cost"):
            out[k][i, stop:] = np.nan
    return {int(h): {k: out[k][i] for k in LABEL_COLUMNS} for i, h in enumerate(hs)}


def triple_barrier_fast(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    width_up: np.ndarray,
    width_dn: np.ndarray,
    horizon: int,
    cost_points: float = 0.0,
    vertical: str = "zero",
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Drop-in, compiled ``triple_barrier`` (same signature, bit-identical outputs)."""
    return triple_barrier_multi(open_, high, low, close, width_up, width_dn, (horizon,),
                                cost_points, vertical, threads)[int(horizon)]
