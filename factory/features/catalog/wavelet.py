"""Causal wavelet features: Haar energy shares of the trailing window of log returns.

For every bar t and window length ``W`` (a power of two) the ``W`` one-bar log returns ending
at t, ``r_{t-W+1..t}``, are decomposed with the orthonormal Haar transform down to level
``L = log2(W)``: ``a_{j} = (a_{j-1}[0::2] + a_{j-1}[1::2]) / sqrt 2``, ``d_j = (a_{j-1}[0::2]
- a_{j-1}[1::2]) / sqrt 2`` with ``a_0`` the window. The transform is orthonormal, so the
level energies ``E_j = sum d_j^2`` and the final approximation ``E_a = sum a_L^2 = W mean(r)^2``
add up to ``sum r^2`` (Parseval). Outputs are the shares ``E_j / sum E`` (level 1 = the
finest scale, two-bar oscillations; ``a`` = the window's drift); all shares are 0 for a
window without any price change. Only data <= t enters, since every window ends at t.

The Haar transform is a few lines of numpy, so PyWavelets is not needed (it transforms one
signal per call, i.e. a Python loop over bars). :func:`haar_energies` applies it to a window
matrix (rows = ``sliding_window_view(r, W)``) and is the reference; the group uses
:func:`trailing_haar_energies`, which yields the same coefficients for all windows at once
from delayed copies of the return series (the level-j blocks of the window ending at t are
the dyadic blocks ending at t, t - 2^j, ...): no ``n x W`` matrix (1M bars x 64 x 8 bytes =
512 MB) is ever built, memory is O(n L), and 1M bars take ~0.3 s.

Returns spanning a session break (the first bar of a session, :func:`temporal.session_starts`)
are set to 0 so an overnight jump does not dominate every window it falls in.

Group (warm-up = leading bars left undefined, as a function of the resolved params):

* ``haar_energy`` -> ``haar{W}_d{j}`` for ``j = 1..log2(W)`` and ``haar{W}_a``, per window.
  Warm-up: ``max(windows)`` (returns start at bar 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from factory.features.catalog.temporal import (
    SESSION_GAP_MINUTES,
    log_price,
    mask_session_gaps,
    session_starts,
)
from factory.features.registry import Columns, register, streaming
from factory.features.streaming import GroupStream, Ring

_INV_SQRT2 = 1.0 / np.sqrt(2.0)


def _levels(window: int) -> int:
    levels = int(window).bit_length() - 1
    if window < 2 or 1 << levels != window:
        raise ValueError(f"haar_energy: window must be a power of two >= 2, got {window}")
    return levels


def haar_energies(windows: np.ndarray) -> np.ndarray:
    """Level energies of each row of ``windows`` (rows of length 2^L): shape (rows, L + 1),
    columns ``d_1 .. d_L`` then the approximation ``a_L``."""
    levels = _levels(windows.shape[1])
    approx = np.asarray(windows, dtype=np.float64)
    out = np.empty((approx.shape[0], levels + 1))
    for j in range(levels):
        even, odd = approx[:, 0::2], approx[:, 1::2]
        detail = (even - odd) * _INV_SQRT2
        approx = (even + odd) * _INV_SQRT2
        out[:, j] = (detail * detail).sum(axis=1)
    out[:, levels] = (approx * approx).sum(axis=1)
    return out


def trailing_haar_energies(values: np.ndarray, window: int) -> np.ndarray:
    """Level energies, shape (L + 1, n), of the Haar transform of the window ending at each
    position, computed without the window matrix: the level-j coefficients of every window
    ending at t are those of the dyadic blocks ending at ``t, t - 2^j, ...``, and the block
    coefficients follow the same recursion for all t at once (``a_j(t) = (a_{j-1}(t -
    2^{j-1}) + a_{j-1}(t)) / sqrt 2``, ``d_j`` with the difference), so ``E_j(t)`` is a sum
    of ``W / 2^j`` delayed copies of ``d_j^2``. Same coefficients as :func:`haar_energies` on
    ``sliding_window_view(values, window)`` (transposed); O(n W) work, O(n L) memory."""
    levels = _levels(window)
    approx = np.asarray(values, dtype=np.float64)
    out = np.full((levels + 1, approx.size), np.nan)
    for j in range(1, levels + 1):
        half = 1 << (j - 1)
        detail = np.full_like(approx, np.nan)
        detail[half:] = (approx[:-half] - approx[half:]) * _INV_SQRT2
        nxt = np.full_like(approx, np.nan)
        nxt[half:] = (approx[:-half] + approx[half:]) * _INV_SQRT2
        approx = nxt
        d2 = detail * detail
        energy = out[j - 1]
        energy[:] = d2
        for m in range(1, window >> j):
            energy[m << j:] += d2[: -(m << j)]
    np.multiply(approx, approx, out=out[levels])
    out[:, : window - 1] = np.nan  # incomplete windows (only partly summed above)
    return out


def haar_energy_shares(values: np.ndarray, window: int) -> np.ndarray:
    """Energy shares, shape (L + 1, n), of the trailing window ending at each position (NaN
    where the window is incomplete or holds a NaN; zeros where its energy is 0)."""
    share = trailing_haar_energies(values, window)
    total = share.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(share, total, out=share)  # in place: no (L + 1, n) temporaries
    share[:, ~(total > 0)] = 0.0
    share[:, np.isnan(total)] = np.nan
    return share


@register(warmup=lambda windows, session_gap_minutes: max(windows, default=0),
          category="wavelet")
def haar_energy(bars: pd.DataFrame, windows: Sequence[int] = (16, 64),
                session_gap_minutes: float = SESSION_GAP_MINUTES) -> Columns:
    """Haar wavelet energy share per level of the trailing window of log returns."""
    logc = log_price(bars["close"].to_numpy(np.float64))
    r = np.full_like(logc, np.nan)
    r[1:] = np.diff(logc)
    r = mask_session_gaps(r, session_starts(bars.index, session_gap_minutes))
    out = {}
    for w in windows:
        out.update(_haar_columns(r, int(w)))
    return out


def _haar_columns(r: np.ndarray, w: int) -> Columns:
    shares = haar_energy_shares(r, w)
    names = [f"haar{w}_d{j}" for j in range(1, shares.shape[0])] + [f"haar{w}_a"]
    return {name: shares[k] for k, name in enumerate(names)}


@streaming(haar_energy)
class _HaarStream(GroupStream):
    """The batch transform on exactly the last ``W`` masked returns."""

    @classmethod
    def converge(cls, windows, session_gap_minutes) -> int:
        return max(windows, default=0) + 1

    def warm(self, h) -> None:
        gap = self.p["session_gap_minutes"]
        r = mask_session_gaps(h["r1"], h.starts(gap)) if len(h) else np.zeros(0)
        self.r = Ring(max(self.p["windows"], default=1), r)

    def step(self, b) -> dict[str, float]:
        self.r.push(b.masked_r(self.p["session_gap_minutes"]))
        out = {}
        for w in self.p["windows"]:
            window = self.r.last(w)
            if len(window) < w:
                window = np.concatenate([np.full(w - len(window), np.nan), window])
            out.update({k: v[-1] for k, v in _haar_columns(window, int(w)).items()})
        return out
