"""Sample weights from label concurrency (Lopez de Prado, *Advances in Financial ML*, ch. 4).

A label spans bars ``entry_idx .. exit_idx``. The concurrency c_b of bar b counts labels
spanning it. Overlapping labels share information, so counting each as a full independent
sample overstates how much the data says; the weights below discount that:

* ``uniqueness``: mean of 1/c_b over the label's span (4.4), in (0, 1];
* ``return_attribution``: |sum over the span of r_b / c_b| with r_b the bar's log return
  (4.10), normalised to mean 1 within the block: labels that carry a large, little-shared
  move count more, labels whose return is negligible (mostly cost noise) count less;
* ``uniqueness_decay``: uniqueness times a piecewise-linear decay in cumulative uniqueness
  (4.11), so older observations count less when markets drift (``decay`` = the oldest
  label's weight, see :func:`time_decay`);
* ``none``: all ones.

Everything is computed with difference arrays and prefix sums: O(n) with no per-label loop.
Only the labels passed in count towards concurrency, so the weights of a training block never
depend on validation or test labels (Phase 1 calls this once per symbol and split).
"""

from __future__ import annotations

import numpy as np

from factory.errors import FactoryError

WEIGHT_KINDS = ("uniqueness", "return_attribution", "uniqueness_decay", "none")


def _concurrency(entry_idx: np.ndarray, exit_idx: np.ndarray, n_bars: int) -> np.ndarray:
    """Number of labels spanning each bar."""
    diff = np.zeros(n_bars + 1, np.int64)
    np.add.at(diff, entry_idx, 1)
    np.add.at(diff, exit_idx + 1, -1)
    return np.cumsum(diff[:-1])


def _span_sums(per_bar: np.ndarray, entry_idx: np.ndarray, exit_idx: np.ndarray) -> np.ndarray:
    """Sum of ``per_bar`` over each span, from one prefix sum."""
    csum = np.concatenate([[0.0], np.cumsum(per_bar)])
    return csum[exit_idx + 1] - csum[entry_idx]


def _as_spans(entry_idx, exit_idx) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(entry_idx, np.int64), np.asarray(exit_idx, np.int64)


def average_uniqueness(entry_idx: np.ndarray, exit_idx: np.ndarray, n_bars: int) -> np.ndarray:
    """Average uniqueness of each label among the labels given (one symbol, one block)."""
    entry_idx, exit_idx = _as_spans(entry_idx, exit_idx)
    if len(entry_idx) == 0:
        return np.zeros(0)
    conc = _concurrency(entry_idx, exit_idx, n_bars)
    inv = np.zeros(n_bars, np.float64)
    busy = conc > 0
    inv[busy] = 1.0 / conc[busy]
    span = exit_idx - entry_idx + 1
    # differences of a long running sum carry rounding of order 1e-12: clip to [0, 1]
    return np.clip(_span_sums(inv, entry_idx, exit_idx) / span, 0.0, 1.0)


def return_attribution(
    entry_idx: np.ndarray, exit_idx: np.ndarray, close: np.ndarray, n_bars: int
) -> np.ndarray:
    """|sum of bar log returns / concurrency over each span|, normalised to mean 1.

    The bar return r_b = log(close_b / close_{b-1}) (0 for the first bar) is shared among
    the c_b labels spanning bar b. A block whose attributed returns are all zero gets equal
    weights (ones) rather than a division by zero.
    """
    entry_idx, exit_idx = _as_spans(entry_idx, exit_idx)
    if len(entry_idx) == 0:
        return np.zeros(0)
    close = np.asarray(close, np.float64)[:n_bars]
    ret = np.zeros(n_bars)
    ret[1:] = np.diff(np.log(close))
    conc = _concurrency(entry_idx, exit_idx, n_bars)
    shared = np.divide(ret, conc, out=np.zeros(n_bars), where=conc > 0)
    w = np.abs(_span_sums(shared, entry_idx, exit_idx))
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return np.ones(len(w))
    return w * (len(w) / total)


def time_decay(uniqueness: np.ndarray, oldest_weight: float) -> np.ndarray:
    """Decay factors in (time-ordered) label order, linear in cumulative uniqueness x.

    d(x) = const + slope * x with d = 1 for the newest label (x = total). ``oldest_weight``
    c in [-1, 1]: c = 1 no decay; 0 <= c < 1 the line reaches c at x = 0; -1 < c < 0 the
    oldest fraction |c| of cumulative uniqueness gets weight 0; c = -1 is the limit where only
    the newest label keeps weight. Decaying by cumulative uniqueness instead of by row count
    keeps a burst of heavily overlapping labels from eating the decay budget.
    """
    try:
        c = float(oldest_weight)
    except (TypeError, ValueError):
        c = float("nan")
    if not -1.0 <= c <= 1.0:
        raise FactoryError(
            f"`labeling.time_decay` must be in [-1, 1], got {oldest_weight!r} "
            "(1 = no decay, 0 = linear to zero, try `labeling.time_decay=0.5`)"
        )
    u = np.asarray(uniqueness, np.float64)
    x = np.cumsum(u)
    total = x[-1] if len(x) else 0.0
    if total <= 0 or c == 1.0:
        return np.ones(len(u))
    if c == -1.0:
        return (x >= total).astype(np.float64)
    slope = (1.0 - c) / total if c >= 0 else 1.0 / ((c + 1.0) * total)
    const = 1.0 - slope * total
    return np.maximum(const + slope * x, 0.0)


def sample_weights(
    kind: str,
    entry_idx: np.ndarray,
    exit_idx: np.ndarray,
    close: np.ndarray,
    n_bars: int,
    decay: float = 1.0,
) -> np.ndarray:
    """The ``labeling.sample_weight`` scheme for one block of labels (any row order)."""
    if kind not in WEIGHT_KINDS:
        raise FactoryError(
            f"`labeling.sample_weight` must be one of {', '.join(WEIGHT_KINDS)}, got {kind!r} "
            "(try `labeling.sample_weight=uniqueness`)"
        )
    entry_idx, exit_idx = _as_spans(entry_idx, exit_idx)
    if kind == "none":
        return np.ones(len(entry_idx))
    if kind == "return_attribution":
        return return_attribution(entry_idx, exit_idx, close, n_bars)
    u = average_uniqueness(entry_idx, exit_idx, n_bars)
    if kind == "uniqueness" or len(u) == 0:
        return u
    order = np.argsort(entry_idx, kind="stable")  # decay runs oldest -> newest
    d = np.empty(len(u))
    d[order] = time_decay(u[order], decay)
    return u * d
