"""pandas' fixed-window rolling kernels, one value at a time, bit for bit.

A pandas rolling sum, mean, variance or covariance is not a function of its window alone:
pandas runs one online accumulator over the whole series (Kahan-compensated sums, Welford's
variance and co-moments, a recompute from the window when it suspects cancellation), so the
last bits of the value at bar t depend on every bar before it. Recomputing the window from
scratch therefore differs from the batch value in the last bits. :class:`PandasRolling` runs
the same accumulator, with the same operations in the same order, over the history once
(:meth:`~PandasRolling.warm`, compiled) and then one new value at a time
(:meth:`~PandasRolling.push`): the streamed values equal ``Series.rolling(w).<kind>()``
bit for bit (tests/test_streaming_kernels.py checks it against the installed pandas, so a
change of pandas' kernels is caught there). The algorithms are those of pandas 3.1's
``pandas/_libs/window/aggregations.pyx`` (BSD-3-Clause), restated for one fixed window;
:func:`kahan_cumsum` is its ``groupby.cumsum``.

Only ``+ - * /`` and comparisons are compiled here (IEEE-exact in any compiler); logarithms
and exponentials stay in numpy, whose results differ from the compiled ones in the last bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EPS = float(np.finfo(np.float64).eps)
INV_COND_TOL = EPS * 1e3  # pandas: below 3 significant digits an update is ill-conditioned
MAX_ORIGIN = float(np.sqrt(np.finfo(np.float64).max))

KINDS = ("sum", "mean", "var", "std", "cov")
# state slots (float64): 0 i (values seen), then per kind
_SUM, _COMP_ADD, _COMP_REM, _NOBS, _NCONS, _PREV, _NEG = 1, 2, 3, 4, 5, 6, 7
_MEAN_X, _SSQ, _UNSTABLE = 1, 2, 5  # var: 1 mean, 2 ssqdm, 3 comp_add, 4 comp_rem, 5 flag, 6 nobs
_STATE = 16


# ---------------------------------------------------------------------------------- sum, mean
@njit(cache=True)
def _add_sum(val, st, neg):  # pragma: no cover (compiled)
    if val == val:
        st[_NOBS] += 1
        y = val - st[_COMP_ADD]
        t = st[_SUM] + y
        st[_COMP_ADD] = t - st[_SUM] - y
        st[_SUM] = t
        if neg and np.signbit(val):
            st[_NEG] += 1
        if val == st[_PREV]:
            st[_NCONS] += 1
        else:
            st[_NCONS] = 1
        st[_PREV] = val


@njit(cache=True)
def _remove_sum(val, st, neg):  # pragma: no cover (compiled)
    if val == val:
        st[_NOBS] -= 1
        y = -val - st[_COMP_REM]
        t = st[_SUM] + y
        st[_COMP_REM] = t - st[_SUM] - y
        st[_SUM] = t
        if neg and np.signbit(val):
            st[_NEG] -= 1


@njit(cache=True)
def _sum_mean(values, w, minp, mean, st, ring, out):  # pragma: no cover (compiled)
    """roll_sum / roll_mean over ``values`` continuing from ``st``; ``ring`` (w + 1) keeps
    the last values (the one leaving the window, and a window to set up from)."""
    size = ring.shape[0]
    for k in range(values.shape[0]):
        i = int(st[0])
        val = values[k]
        if np.isinf(val):
            val = np.nan  # pandas' _prep_values
        ring[i % size] = val
        e = i + 1
        s = max(0, e - w)
        if i == 0 or s >= i:
            st[_SUM] = st[_COMP_ADD] = st[_COMP_REM] = st[_NOBS] = st[_NEG] = 0.0
            st[_PREV] = ring[s % size]
            st[_NCONS] = 0.0
            for j in range(s, e):
                _add_sum(ring[j % size], st, mean)
        else:
            for j in range(max(0, i - w), s):
                _remove_sum(ring[j % size], st, mean)
            _add_sum(val, st, mean)
        nobs = st[_NOBS]
        if mean:
            if nobs >= minp and nobs > 0:
                res = st[_SUM] / nobs
                if st[_NCONS] >= nobs:
                    res = st[_PREV]
                elif st[_NEG] == 0 and res < 0:
                    res = 0.0
                elif st[_NEG] == nobs and res > 0:
                    res = 0.0
            else:
                res = np.nan
        elif nobs == 0 and minp == 0:
            res = 0.0
        elif nobs >= minp:
            res = st[_PREV] * nobs if st[_NCONS] >= nobs else st[_SUM]
        else:
            res = np.nan
        out[k] = res
        st[0] = i + 1


# ---------------------------------------------------------------------------------- var
@njit(cache=True)
def _add_var(val, st):  # pragma: no cover (compiled)
    if val != val:
        return
    prev_m2 = st[_SSQ]
    st[6] += 1
    prev_mean = st[_MEAN_X] - st[3]
    y = val - st[3]
    t = y - st[_MEAN_X]
    st[3] = t + st[_MEAN_X] - y
    if st[6] != 0:
        st[_MEAN_X] = st[_MEAN_X] + t / st[6]
    else:
        st[_MEAN_X] = 0.0
    st[_SSQ] = st[_SSQ] + (val - prev_mean) * (val - st[_MEAN_X])
    if prev_m2 * INV_COND_TOL > st[_SSQ]:
        st[_UNSTABLE] = 1.0


@njit(cache=True)
def _remove_var(val, st):  # pragma: no cover (compiled)
    if val == val:
        prev_m2 = st[_SSQ]
        st[6] -= 1
        if st[6] != 0:
            prev_mean = st[_MEAN_X] - st[4]
            y = val - st[4]
            t = y - st[_MEAN_X]
            st[4] = t + st[_MEAN_X] - y
            st[_MEAN_X] = st[_MEAN_X] - t / st[6]
            st[_SSQ] = st[_SSQ] - (val - prev_mean) * (val - st[_MEAN_X])
            if prev_m2 * INV_COND_TOL > st[_SSQ]:
                st[_UNSTABLE] = 1.0
        else:
            st[_MEAN_X] = 0.0
            st[_SSQ] = 0.0
            st[_UNSTABLE] = 0.0


@njit(cache=True)
def _var(values, w, minp, ddof, st, ring, out):  # pragma: no cover (compiled)
    """roll_var (Welford with Kahan-compensated means, recomputed when unstable)."""
    size = ring.shape[0]
    minp = max(minp, 1)
    for k in range(values.shape[0]):
        i = int(st[0])
        val = values[k]
        if np.isinf(val):
            val = np.nan
        ring[i % size] = val
        e = i + 1
        s = max(0, e - w)
        recompute = i == 0 or s >= i
        if not recompute:
            for j in range(max(0, i - w), s):
                _remove_var(ring[j % size], st)
            _add_var(val, st)
        if recompute or st[_UNSTABLE] != 0.0:
            st[_MEAN_X] = st[_SSQ] = st[6] = st[3] = st[4] = 0.0
            for j in range(s, e):
                _add_var(ring[j % size], st)
            st[_UNSTABLE] = 0.0
        nobs = st[6]
        out[k] = st[_SSQ] / (nobs - ddof) if nobs >= minp and nobs > ddof else np.nan
        st[0] = i + 1


# ---------------------------------------------------------------------------------- cov
# cov state: 1 nobs, 2 mean_x, 3 mean_y, 4 origin_x, 5 origin_y, 6 ssq_xy, 7 ssq_x, 8 ssq_y,
# 9 peak_x, 10 peak_y, 11 unstable
@njit(cache=True)
def _suspect(st):  # pragma: no cover (compiled)
    xy, xx, yy, px, py = st[6], st[7], st[8], st[9], st[10]
    if xy != xy or xx != xx or yy != yy:
        return True
    return (px * py * INV_COND_TOL > abs(xy) or px * px * INV_COND_TOL > xx
            or py * py * INV_COND_TOL > yy)


@njit(cache=True)
def _peak(sx, sy, st):  # pragma: no cover (compiled)
    dx = abs(sx - st[2])
    dy = abs(sy - st[3])
    if dx > st[9]:
        st[9] = dx
    if dy > st[10]:
        st[10] = dy


@njit(cache=True)
def _add_cov(vx, vy, st):  # pragma: no cover (compiled)
    if vx != vx or vy != vy:
        return
    st[1] += 1
    if st[1] == 1:
        st[4] = vx if abs(vx) < MAX_ORIGIN else 0.0
        st[5] = vy if abs(vy) < MAX_ORIGIN else 0.0
    sx = vx - st[4]
    sy = vy - st[5]
    dx = sx - st[2]
    dy = sy - st[3]
    st[2] += dx / st[1]
    st[3] += dy / st[1]
    st[6] += (sx - st[2]) * dy
    st[7] += (sx - st[2]) * dx
    st[8] += (sy - st[3]) * dy
    _peak(sx, sy, st)
    if _suspect(st):
        st[11] = 1.0


@njit(cache=True)
def _remove_cov(vx, vy, st):  # pragma: no cover (compiled)
    if vx != vx or vy != vy:
        return
    sx = vx - st[4]
    sy = vy - st[5]
    dx = sx - st[2]
    dy = sy - st[3]
    st[1] -= 1
    if st[1] != 0:
        st[2] -= dx / st[1]
        st[3] -= dy / st[1]
        st[6] -= (sx - st[2]) * dy
        st[7] -= (sx - st[2]) * dx
        st[8] -= (sy - st[3]) * dy
        _peak(sx, sy, st)
        if _suspect(st):
            st[11] = 1.0
    else:
        for slot in range(2, 12):
            st[slot] = 0.0


@njit(cache=True)
def _cov(xs, ys, w, minp, ddof, st, ring, ring_y, out):  # pragma: no cover (compiled)
    """roll_cov (incremental co-moments anchored at the window's first value)."""
    size = ring.shape[0]
    minp = max(minp, 1)
    for k in range(xs.shape[0]):
        i = int(st[0])
        vx, vy = xs[k], ys[k]
        if np.isinf(vx):
            vx = np.nan
        if np.isinf(vy):
            vy = np.nan
        ring[i % size] = vx
        ring_y[i % size] = vy
        e = i + 1
        s = max(0, e - w)
        recompute = i == 0 or s >= i
        if not recompute:
            for j in range(max(0, i - w), s):
                _remove_cov(ring[j % size], ring_y[j % size], st)
            _add_cov(vx, vy, st)
        if recompute or st[11] != 0.0:
            for slot in range(1, 12):
                st[slot] = 0.0
            for j in range(s, e):
                _add_cov(ring[j % size], ring_y[j % size], st)
            st[11] = 0.0
        nobs = st[1]
        out[k] = np.nan if nobs < minp or nobs <= ddof else st[6] / (nobs - ddof)
        st[0] = i + 1


class PandasRolling:
    """``Series.rolling(window, min_periods).<kind>()`` one value at a time (see the module
    docstring). ``kind``: sum, mean, var, std (var, then pandas' zsqrt) or cov (push x and y).
    ``warm`` runs it over a history (O(history), compiled); ``push`` adds one value and
    returns the new output. State: O(window)."""

    def __init__(self, kind: str, window: int, min_periods: int | None = None,
                 ddof: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"PandasRolling: kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.window = kind, int(window)
        self.min_periods = self.window if min_periods is None else int(min_periods)
        self.ddof = int(ddof)
        self.state = np.zeros(_STATE)
        self.ring = np.full(self.window + 1, np.nan)
        self.ring_y = np.full(self.window + 1, np.nan) if kind == "cov" else None
        self._one = np.empty(1)
        self._x, self._y = np.empty(1), np.empty(1)

    def _run(self, x: np.ndarray, y: np.ndarray | None, out: np.ndarray) -> np.ndarray:
        w, minp, st, ring = self.window, self.min_periods, self.state, self.ring
        if self.kind in ("sum", "mean"):
            _sum_mean(x, w, minp, self.kind == "mean", st, ring, out)
        elif self.kind == "cov":
            _cov(x, y, w, minp, self.ddof, st, ring, self.ring_y, out)
        else:
            _var(x, w, minp, self.ddof, st, ring, out)
            if self.kind == "std":
                with np.errstate(invalid="ignore"):
                    neg = out < 0
                    np.sqrt(out, out=out)
                out[neg] = 0.0
        return out

    def warm(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Run over a history (from a fresh state); the outputs, as pandas gives them."""
        x = np.ascontiguousarray(x, np.float64)
        y = None if y is None else np.ascontiguousarray(y, np.float64)
        return self._run(x, y, np.empty(len(x)))

    def push(self, x: float, y: float | None = None) -> float:
        """Add one value (and its pair for cov); the new output."""
        self._x[0] = x
        if y is not None:
            self._y[0] = y
        return float(self._run(self._x, self._y if y is not None else None, self._one)[0])


@njit(cache=True)
def kahan_cumsum_step(val, st):  # pragma: no cover (compiled)
    """One step of pandas' ``groupby(...).cumsum()`` (Kahan): ``st`` = [accum, compensation]
    of the current group; NaN gives NaN and leaves the sum alone."""
    if val != val:
        return np.nan
    y = val - st[1]
    t = st[0] + y
    st[1] = t - st[0] - y
    st[0] = t
    return t


@njit(cache=True)
def rank_average(values, last):  # pragma: no cover (compiled)
    """pandas' rolling ``rank(method="average")`` of ``last`` in ``values`` (its window):
    the skiplist's max and min rank of the value, averaged by the same formula; NaN when
    ``last`` is NaN (NaNs are not counted)."""
    if last != last:
        return np.nan
    le = 0
    lt = 0
    for v in values:
        if v == v:
            if v <= last:
                le += 1
            if v < last:
                lt += 1
    rank = float(le)
    rank_min = float(lt + 1)
    return ((rank * (rank + 1) / 2) - ((rank_min - 1) * rank_min / 2)) / (rank - rank_min + 1)


@njit(cache=True)
def count_valid(values):  # pragma: no cover (compiled)
    n = 0
    for v in values:
        if v == v:
            n += 1
    return n
