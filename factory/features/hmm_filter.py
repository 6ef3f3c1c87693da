"""Causal forward filter for a Gaussian HMM (the part of :mod:`factory.features.regimes`
that must never see the future).

``alpha_t ∝ (alpha_{t-1} @ A) * b_t(o_t)``, normalised each step, computed in fixed blocks
anchored at the first bar so that a prefix of the bars gives bit-identical probabilities.
hmmlearn's ``predict_proba`` smooths with the backward pass and is never used for features.
"""

from __future__ import annotations

from collections import deque

import numpy as np

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


def forward_filter(
    log_b: np.ndarray, startprob: np.ndarray, transmat: np.ndarray, block: int = FILTER_BLOCK
) -> np.ndarray:
    """Filtered state probabilities ``P(s_t | o_0..o_t)`` of an HMM, one row per step.

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
    log_b = np.asarray(log_b, dtype=np.float64)
    n, k_states = log_b.shape
    out = np.empty((n, k_states))
    if n == 0:
        return out
    A = np.asarray(transmat, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_pi = np.log(np.asarray(startprob, dtype=np.float64))
    a0 = log_pi + log_b[0]
    a0 = np.exp(a0 - np.max(a0))
    out[0] = a0 / _sum_first(a0)
    if n == 1:
        return out
    # scaled emissions: max 1 per row (a per-row constant cancels in the normalisation)
    scaled = log_b[1:] - np.max(log_b[1:], axis=1, keepdims=True)
    np.exp(scaled, out=scaled)
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
