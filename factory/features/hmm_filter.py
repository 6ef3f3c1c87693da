"""Causal forward filter for a Gaussian HMM (the part of :mod:`factory.features.regimes`
that must never see the future).

``alpha_t ∝ (alpha_{t-1} @ A) * b_t(o_t)``, normalised each step, computed in fixed blocks
anchored at the first bar so that a prefix of the bars gives bit-identical probabilities.
hmmlearn's ``predict_proba`` smooths with the backward pass and is never used for features.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numba import njit

# Rows per block of the blocked forward filter. Fixed (never derived from the data length),
# so blocks are anchored at the first valid bar and a prefix of the bars gives bit-identical
# probabilities.
FILTER_BLOCK = 512


# --------------------------------------------------------------------------------------
# forward filter
# --------------------------------------------------------------------------------------
def gaussian_log_likelihood(x: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """(n, K) log N(x_t; means_k, covars_k) for full (K, d, d) covariances.

    Only elementwise numpy operations (no BLAS), so each row's value depends on that row
    alone, bit for bit, whatever the number of rows.
    """
    n, d = x.shape
    k_states = means.shape[0]
    out = np.empty((n, k_states))
    for k in range(k_states):
        chol = np.linalg.cholesky(covars[k])
        inv = np.linalg.inv(chol)  # z = inv @ (x - mu): whitened residual
        logdet = 2.0 * np.sum(np.log(np.diag(chol)))
        diff = [x[:, j] - means[k, j] for j in range(d)]
        quad = np.zeros(n)
        for i in range(d):
            z = np.zeros(n)
            for j in range(i + 1):
                z = z + inv[i, j] * diff[j]
            quad = quad + z * z
        out[:, k] = -0.5 * (d * np.log(2.0 * np.pi) + logdet + quad)
    return out


def forward_filter_numpy(
    log_b: np.ndarray, startprob: np.ndarray, transmat: np.ndarray, block: int = FILTER_BLOCK
) -> np.ndarray:
    """Filtered state probabilities ``P(s_t | o_0..o_t)`` of an HMM, one row per step: the
    vectorised numpy reference of :func:`forward_filter` (bit-identical results).

    ``log_b`` is (n, K) emission log-likelihoods (a row of zeros = a missing observation: the
    step only predicts). Row 0 is ``startprob * b_0`` normalised; row t is
    ``(alpha_{t-1} @ transmat) * b_t`` normalised. Row t uses rows <= t of ``log_b`` only.

    The recursion is linear up to normalisation, so it is evaluated in fixed blocks of
    ``block`` steps: for every block at once (vectorised) the product of its step matrices
    ``M_t = transmat @ diag(b_t)`` is accumulated, kept row-normalised with separate row
    scales (no under/overflow); a short loop over blocks carries ``alpha`` across block
    boundaries; a second vectorised pass emits each row from its block's entering ``alpha``
    and the running product. Same results as the step-by-step loop (to rounding, ~1e-15),
    ~3x faster than the tightest pure-Python loop (1M rows, 3 states: ~1.1 s against
    ~3.3 s; a numpy-per-step loop takes ~5 s), and bit-identical for any prefix of
    ``log_b`` (blocks are anchored at row 0 and all arithmetic is elementwise).
    ``transmat`` must have no zero entry (:class:`HMMRegimes` floors it at 1e-12).
    """
    out, scaled, A = _first_row(log_b, startprob, transmat)
    if scaled is None:
        return out
    n, k_states = out.shape
    m = n - 1
    n_blocks = -(-m // block)
    full = m // block
    # (block, K, n_blocks): step j of every block, the blocks along the last, contiguous axis;
    # filled block by block (no padded copy), steps past the last row are ones
    emis = np.empty((block, k_states, n_blocks))
    by_block = emis.transpose(2, 0, 1)  # (n_blocks, block, K) view
    by_block[:full] = scaled[: full * block].reshape(full, block, k_states)
    if full < n_blocks:
        by_block[full, : m - full * block] = scaled[full * block:]
        by_block[full, m - full * block:] = 1.0
    del scaled

    def steps():
        """Yield (j, R, d): each block's product of steps 0..j as diag(d) @ R.

        Layout: R[i, l, b] (rows i, columns l, block b), d[i, b]; rows of R sum to 1 and
        max_i d[i, b] = 1, so nothing under- or overflows.
        """
        R = np.zeros((k_states, k_states, n_blocks))
        for i in range(k_states):
            R[i, i] = 1.0
        d = np.ones((k_states, n_blocks))
        for j in range(block):
            T = R[:, 0, None, :] * A[0][None, :, None]
            for k in range(1, k_states):
                T = T + R[:, k, None, :] * A[k][None, :, None]
            T = T * emis[j][None, :, :]
            rs = _sum_first(T.transpose(1, 0, 2))  # row sums (K, B); > 0 as A is floored
            R = T / rs[:, None, :]
            d = d * rs
            d = d / np.max(d, axis=0)
            yield j, R, d

    # pass 1: each block's full product; then alpha entering every block, in order
    _, R_end, d_end = deque(steps(), maxlen=1)[0]
    enter = np.empty((k_states, n_blocks))
    alpha = out[0][:, None]
    for b in range(n_blocks):
        enter[:, b] = alpha[:, 0]
        if b + 1 < n_blocks:
            alpha = _combine(alpha, d_end[:, b : b + 1], R_end[:, :, b : b + 1])
    # pass 2: every row from its block's entering alpha and the running product
    rows = out[1:]
    pos = np.arange(n_blocks) * block
    for j, R, d in steps():
        alpha_j = _combine(enter, d, R)
        ok = pos + j < m
        rows[pos[ok] + j] = alpha_j[:, ok].T
    return out


def forward_filter(
    log_b: np.ndarray, startprob: np.ndarray, transmat: np.ndarray, block: int = FILTER_BLOCK
) -> np.ndarray:
    """Filtered state probabilities ``P(s_t | o_0..o_t)`` of an HMM, one row per step.

    ``log_b`` is (n, K) emission log-likelihoods (a row of zeros = a missing observation: the
    step only predicts). Row 0 is ``startprob * b_0`` normalised; row t is
    ``(alpha_{t-1} @ transmat) * b_t`` normalised. Row t uses rows <= t of ``log_b`` only.

    The blocked evaluation of :func:`forward_filter_numpy` (see there), compiled: the same
    operations in the same order, block by block instead of all blocks per step, so the
    results are bit-identical (tested), with no (block, K, blocks) emission copy, in ~0.1 s
    for a million rows where the numpy passes take ~0.8 s.
    """
    out, scaled, A = _first_row(log_b, startprob, transmat)
    if scaled is not None:
        _filter_rows(scaled, A, out, int(block))
    return out


def _first_row(log_b, startprob, transmat) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(out with row 0 filled, the emissions of rows 1.. scaled to max 1 per row, A)."""
    log_b = np.asarray(log_b, dtype=np.float64)
    n, k_states = log_b.shape
    out = np.empty((n, k_states))
    A = np.asarray(transmat, dtype=np.float64)
    if n == 0:
        return out, None, A
    with np.errstate(divide="ignore"):
        log_pi = np.log(np.asarray(startprob, dtype=np.float64))
    a0 = log_pi + log_b[0]
    a0 = np.exp(a0 - np.max(a0))
    out[0] = a0 / _sum_first(a0)
    if n == 1:
        return out, None, A
    # scaled emissions: max 1 per row (a per-row constant cancels in the normalisation)
    scaled = log_b[1:] - np.max(log_b[1:], axis=1, keepdims=True)
    np.exp(scaled, out=scaled)
    return out, scaled, A


@njit(cache=True, nogil=True)
def _nan_max(x):  # pragma: no cover (compiled)
    """np.max of a short vector, NaN if any element is NaN."""
    mx = x[0]
    for i in range(1, x.shape[0]):
        if np.isnan(x[i]) or x[i] > mx or np.isnan(mx):
            mx = x[i] if not np.isnan(mx) else mx
    return mx


@njit(cache=True, nogil=True)
def block_step(R, d, A, emission, T, rs):  # pragma: no cover (compiled)
    """One step of a block's running product ``diag(d) R``: ``T = R @ A * emission`` (per
    column), its rows renormalised into ``R``, their sums folded into ``d``, and ``d``
    rescaled to a maximum of 1. ``T`` and ``rs`` are scratch. Shared by the batch filter and
    the live stream (factory/features/streaming_fitted.py), so both do the same arithmetic."""
    K = A.shape[0]
    for i in range(K):
        for col in range(K):
            v = R[i, 0] * A[0, col]
            for k in range(1, K):
                v = v + R[i, k] * A[k, col]
            T[i, col] = v * emission[col]
    for i in range(K):
        acc = T[i, 0]
        for col in range(1, K):
            acc = acc + T[i, col]
        rs[i] = acc
    for i in range(K):
        for col in range(K):
            R[i, col] = T[i, col] / rs[i]
        d[i] = d[i] * rs[i]
    mx = _nan_max(d)
    for i in range(K):
        d[i] = d[i] / mx


@njit(cache=True, nogil=True)
def emit_row(alpha, d, R, w, res):  # pragma: no cover (compiled)
    """``res = normalise(alpha @ diag(d) @ R)``: the filtered probabilities after the block's
    steps so far, from the ``alpha`` entering the block. ``w`` is scratch."""
    K = R.shape[0]
    for i in range(K):
        w[i] = alpha[i] * d[i]
    mx = _nan_max(w)
    for i in range(K):
        w[i] = w[i] / mx
    for col in range(K):
        acc = w[0] * R[0, col]
        for i in range(1, K):
            acc = acc + w[i] * R[i, col]
        res[col] = acc
    total = res[0]
    for col in range(1, K):
        total = total + res[col]
    for col in range(K):
        res[col] = res[col] / total


@njit(cache=True, nogil=True)
def _filter_rows(scaled, A, out, block):  # pragma: no cover (compiled)
    """Rows 1.. of ``out`` (row 0 given), as :func:`forward_filter_numpy`'s two passes,
    operation for operation: pass 0 multiplies each block's steps to carry alpha across
    blocks, pass 1 emits every row from its block's entering alpha."""
    m, K = scaled.shape
    n_blocks = (m + block - 1) // block
    R, T = np.empty((K, K)), np.empty((K, K))
    d, rs, w, res = np.empty(K), np.empty(K), np.empty(K), np.empty(K)
    enter = np.empty((n_blocks, K))
    alpha = out[0].copy()
    for p in range(2):
        for b in range(n_blocks):
            if p == 0:
                enter[b] = alpha
                if b + 1 == n_blocks:
                    break
                steps = block
            else:
                steps = min(block, m - b * block)
            R[:] = 0.0
            for i in range(K):
                R[i, i] = 1.0
            d[:] = 1.0
            for j in range(steps):
                t = b * block + j
                block_step(R, d, A, scaled[t], T, rs)
                if p == 0 and j < steps - 1:
                    continue
                # alpha entering the block (pass 1) or the carried one (pass 0, after the
                # block's last step)
                emit_row(enter[b] if p == 1 else alpha, d, R, w, res)
                if p == 0:
                    alpha[:] = res
                else:
                    out[1 + t] = res


def _sum_first(x: np.ndarray) -> np.ndarray:
    """Sum over the (short) first axis in index order, elementwise: each output element is
    computed the same way whatever the other axes' lengths."""
    acc = x[0].copy()
    for p in x[1:]:
        acc = acc + p
    return acc


def _combine(alpha: np.ndarray, d: np.ndarray, R: np.ndarray) -> np.ndarray:
    """normalise(alpha @ diag(d) @ R) per block: alpha, d (K, B); R (K, K, B) -> (K, B)."""
    w = alpha * d
    w = w / np.max(w, axis=0)
    x = _sum_first(w[:, None, :] * R)
    return x / _sum_first(x)
