"""Streaming (online) softmax and attention, one block of keys at a time.

A FlashAttention-style kernel never holds a whole row of logits: it reads the keys in
blocks and keeps, per query row, a running maximum ``m`` and a running normaliser
``s = Σ exp(z_j − m)`` over the keys seen so far. When a block raises the maximum to
``m'`` the old sum is rescaled by ``exp(m − m')``. An attention output
``o = Σ exp(z_j − m) v_j`` is accumulated and rescaled the same way and divided by
``s`` at the end. The result equals the two-pass softmax to rounding.

Shapes: logits are ``(n,)`` (one row) or ``(rows, n)`` (one row per query), with the
keys along the last axis; values are ``(n, d_v)``. All arithmetic stays in the input's
floating dtype (float32 in, float32 arithmetic), so the rounding can be measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, positive_int
from numscale.softmax import softmax as two_pass_softmax


@dataclass(frozen=True)
class OnlineState:
    """Running state of the online softmax for each row: maximum ``m`` and sum ``s``.

    ``m`` and ``s`` have shape ``(rows,)`` (``()`` for a single row);
    ``s = Σ exp(z_j − m)`` over the keys seen so far, so ``logsumexp = m + log s``.
    """

    m: np.ndarray
    s: np.ndarray

    @property
    def logsumexp(self) -> np.ndarray:
        """log Σ exp(z_j) over the keys seen so far: ``m + log s``."""
        return self.m + np.log(self.s)


def _logits(logits: np.ndarray) -> tuple[np.ndarray, bool]:
    """Validate logits; return them as ``(rows, n)`` and whether the input was 1-D."""
    z = as_float_array(logits, "logits", ndim=(1, 2))
    if z.shape[-1] == 0:
        raise ValueError(f"logits must have at least one key (last axis), got shape {z.shape}")
    return (z[None, :], True) if z.ndim == 1 else (z, False)


def _blocks(n: int, block_size: int) -> list[slice]:
    return [slice(start, min(start + block_size, n)) for start in range(0, n, block_size)]


def combine_states(a: OnlineState, b: OnlineState) -> OnlineState:
    """Merge the states of two disjoint sets of keys: ``(m, s) ⊕ (m', s')``.

    ``M = max(m, m')`` and ``S = s·exp(m − M) + s'·exp(m' − M)``. The operation is
    associative and commutative, so partial states can be merged in any order
    (split-K / FlashDecoding). Shapes of ``m``, ``s`` must match.
    """
    ma, sa = np.asarray(a.m), np.asarray(a.s)
    mb, sb = np.asarray(b.m), np.asarray(b.s)
    if ma.shape != mb.shape or sa.shape != sb.shape or ma.shape != sa.shape:
        raise ValueError(f"states must have matching shapes, got m {ma.shape}, {mb.shape} and s {sa.shape}, {sb.shape}")
    m = np.maximum(ma, mb)
    return OnlineState(m=m, s=sa * np.exp(ma - m) + sb * np.exp(mb - m))


def online_state_trace(logits: np.ndarray, block_size: int) -> list[OnlineState]:
    """The running state ``(m, s)`` after each block of keys.

    ``logits``: ``(n,)`` or ``(rows, n)``. Returns ``ceil(n / block_size)`` states; the
    last one covers every key. Each step is
    ``m' = max(m, max(block))``, ``s' = s·exp(m − m') + Σ_block exp(z_j − m')``.
    """
    z, single = _logits(logits)
    block_size = positive_int(block_size, "block_size")
    m = np.full(z.shape[0], -np.inf, dtype=z.dtype)
    s = np.zeros(z.shape[0], dtype=z.dtype)
    states = []
    for blk in _blocks(z.shape[1], block_size):
        zb = z[:, blk]
        m_new = np.maximum(m, zb.max(axis=1))
        # exp(−inf − m_new) = 0 on the first block: the empty sum has no weight.
        s = s * np.exp(m - m_new) + np.exp(zb - m_new[:, None]).sum(axis=1)
        m = m_new
        states.append(OnlineState(m=m[0] if single else m, s=s[0] if single else s))
    return states


def online_logsumexp(logits: np.ndarray, block_size: int) -> np.ndarray:
    """log Σ exp(z) in one streaming pass over blocks of ``block_size`` keys.

    Shape ``(n,) -> ()``, ``(rows, n) -> (rows,)``. Finite for any finite input.
    """
    return online_state_trace(logits, block_size)[-1].logsumexp


def online_softmax(logits: np.ndarray, block_size: int) -> np.ndarray:
    """Softmax from the streamed normaliser: ``exp(z − m) / s`` with the final ``(m, s)``.

    One streaming pass computes ``(m, s)`` (Milakov & Gimelshein's online normaliser);
    a second, elementwise pass writes the probabilities. Shape ``(..., n) -> (..., n)``.
    """
    z, single = _logits(logits)
    state = online_state_trace(z, block_size)[-1]
    p = np.exp(z - state.m[:, None]) / state.s[:, None]
    return p[0] if single else p


def online_attention(logits: np.ndarray, values: np.ndarray, block_size: int) -> np.ndarray:
    """softmax(logits) @ values in one streaming pass, as FlashAttention accumulates its output.

    ``logits``: ``(n,)`` or ``(rows, n)``; ``values``: ``(n, d_v)``. Per block the
    unnormalised output ``o = Σ exp(z_j − m) v_j`` is rescaled by ``exp(m − m')`` and
    the block's contribution added; ``o / s`` is returned at the end. Shape
    ``(d_v,)`` or ``(rows, d_v)``. Arithmetic in the common dtype of the inputs.
    """
    z, single = _logits(logits)
    v = as_float_array(values, "values", ndim=2)
    if v.shape[0] != z.shape[1]:
        raise ValueError(f"values must have one row per key: logits have {z.shape[1]} keys, values shape {v.shape}")
    block_size = positive_int(block_size, "block_size")
    dtype = np.result_type(z.dtype, v.dtype)
    z, v = z.astype(dtype, copy=False), v.astype(dtype, copy=False)
    m = np.full(z.shape[0], -np.inf, dtype=dtype)
    s = np.zeros(z.shape[0], dtype=dtype)
    o = np.zeros((z.shape[0], v.shape[1]), dtype=dtype)
    for blk in _blocks(z.shape[1], block_size):
        zb = z[:, blk]
        m_new = np.maximum(m, zb.max(axis=1))
        scale = np.exp(m - m_new)
        w = np.exp(zb - m_new[:, None])
        s = s * scale + w.sum(axis=1)
        o = o * scale[:, None] + w @ v[blk]
        m = m_new
    out = o / s[:, None]
    return out[0] if single else out


def two_pass_attention(logits: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Reference: the stable softmax over all keys at once, then ``p @ values``.

    Shapes as in :func:`online_attention`.
    """
    z, single = _logits(logits)
    v = as_float_array(values, "values", ndim=2)
    if v.shape[0] != z.shape[1]:
        raise ValueError(f"values must have one row per key: logits have {z.shape[1]} keys, values shape {v.shape}")
    dtype = np.result_type(z.dtype, v.dtype)
    out = two_pass_softmax(z.astype(dtype, copy=False)) @ v.astype(dtype, copy=False)
    return out[0] if single else out


def block_size_errors(logits: np.ndarray, block_sizes: list[int] | np.ndarray) -> np.ndarray:
    """Largest relative difference between online and two-pass softmax, per block size.

    Both are computed in the dtype of ``logits``; the relative difference
    ``max_j |p_online − p_two_pass| / p_two_pass`` is taken over entries with
    ``p_two_pass`` above the dtype's smallest normal (subnormals have coarser relative
    spacing). Shape ``(len(block_sizes),)``, float64.
    """
    z, _ = _logits(logits)
    reference = two_pass_softmax(z)
    ok = reference > np.finfo(z.dtype).smallest_normal
    out = []
    for b in block_sizes:
        p = online_softmax(z, int(b))
        rel = np.abs(p.astype(np.float64) - reference.astype(np.float64))[ok] / reference.astype(np.float64)[ok]
        out.append(float(rel.max()))
    return np.array(out)
