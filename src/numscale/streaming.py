"""Streaming (online) softmax and attention, one block of keys at a time.

A FlashAttention-style kernel never holds a whole row of logits: it reads the keys in
blocks and keeps, per query row, a running maximum ``m`` and a running normaliser
``s = Σ exp(z_j − m)`` over the keys seen so far. When a block raises the maximum to
``m'`` the old sum is rescaled by ``exp(m − m')``. An attention output
``o = Σ exp(z_j − m) v_j`` is accumulated and rescaled the same way and divided by
``s`` once, at the end (FlashAttention-2's form; FlashAttention-1 keeps a normalised
output and rescales it every block). The result equals the two-pass softmax to rounding.

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
        raise ValueError(
            f"logits must have at least one key (last axis), got shape {z.shape}"
        )
    return (z[None, :], True) if z.ndim == 1 else (z, False)


def combine_states(a: OnlineState, b: OnlineState) -> OnlineState:
    """Merge the states of two disjoint sets of keys: ``(m, s) ⊕ (m', s')``.

    ``M = max(m, m')`` and ``S = s·exp(m − M) + s'·exp(m' − M)``. The operation is
    commutative (bit for bit) and associative in exact arithmetic; in floating point
    different merge trees agree to rounding (a relative ``c·n·u`` for ``n`` merged
    terms), so partial states can be merged in any order (split-K / FlashDecoding).
    Shapes of ``m``, ``s`` must match. A valid state has ``m`` finite or ``−inf``
    (the empty state) and ``s`` finite and ``>= 0``; anything else raises
    ``ValueError`` naming the state.
    """
    ma, sa = _state_arrays(a, "a")
    mb, sb = _state_arrays(b, "b")
    if ma.shape != mb.shape or sa.shape != sb.shape or ma.shape != sa.shape:
        raise ValueError(
            f"states must have matching shapes, got m {ma.shape}, {mb.shape} "
            f"and s {sa.shape}, {sb.shape}"
        )
    return OnlineState(*_merge(ma, sa, mb, sb))


def _state_arrays(state: OnlineState, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(m, s)`` of ``state`` as float arrays, or raise naming ``name``."""
    if not isinstance(state, OnlineState):
        raise TypeError(f"{name} must be an OnlineState, got {type(state).__name__}")
    m, s = np.asarray(state.m), np.asarray(state.s)
    for part, x in (("m", m), ("s", s)):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name}.{part} must be a floating array, got {x.dtype}")
    if np.isnan(m).any() or np.isposinf(m).any():
        raise ValueError(f"{name}.m must be finite or -inf, got NaN or +inf")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"{name}.s must be finite and non-negative")
    return m, s


def _merge(
    m_a: np.ndarray, s_a: np.ndarray, m_b: np.ndarray, s_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merged state ``M = max(m_a, m_b)``, ``S = s_a·e^(m_a−M) + s_b·e^(m_b−M)``."""
    m = np.maximum(m_a, m_b)
    return m, s_a * np.exp(m_a - m) + s_b * np.exp(m_b - m)


def _online_states(
    z: np.ndarray, block_size: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(m, s) per row after each block of keys; ``z`` is ``(rows, n)``, unchecked."""
    m = np.full(z.shape[0], -np.inf, dtype=z.dtype)  # running maximum per row
    s = np.zeros(z.shape[0], dtype=z.dtype)  # running Σ exp(z_j − m) per row
    states = []
    for start in range(0, z.shape[1], block_size):
        block = z[:, start : start + block_size]
        m_new = np.maximum(m, block.max(axis=1))
        # exp(m − m_new) <= 1 rescales the old sum; 0 on the first block (m = −inf)
        s = s * np.exp(m - m_new) + np.exp(block - m_new[:, None]).sum(axis=1)
        m = m_new
        states.append((m, s))
    return states


def online_state_trace(logits: np.ndarray, block_size: int) -> list[OnlineState]:
    """The running state ``(m, s)`` after each block of keys.

    ``logits``: ``(n,)`` or ``(rows, n)``. Returns ``ceil(n / block_size)`` states; the
    last one covers every key. Each step is
    ``m' = max(m, max(block))``, ``s' = s·exp(m − m') + Σ_block exp(z_j − m')``.
    """
    z, single = _logits(logits)
    block_size = positive_int(block_size, "block_size")
    return [
        OnlineState(m=m[0] if single else m, s=s[0] if single else s)
        for m, s in _online_states(z, block_size)
    ]


def online_logsumexp(logits: np.ndarray, block_size: int) -> np.ndarray:
    """log Σ exp(z) in one streaming pass over blocks of ``block_size`` keys.

    Shape ``(n,) -> ()``, ``(rows, n) -> (rows,)``. Finite for any finite input.
    """
    return online_state_trace(logits, block_size)[-1].logsumexp


def online_softmax(logits: np.ndarray, block_size: int) -> np.ndarray:
    """Softmax from the streamed normaliser: ``exp(z − m) / s``, final ``(m, s)``.

    One streaming pass computes ``(m, s)`` (Milakov & Gimelshein's online normaliser);
    a second, elementwise pass writes the probabilities. Shape ``(..., n) -> (..., n)``.
    """
    z, single = _logits(logits)
    state = online_state_trace(z, block_size)[-1]
    p = np.exp(z - state.m[:, None]) / state.s[:, None]
    return p[0] if single else p


def _online_attention_core(z: np.ndarray, v: np.ndarray, block_size: int) -> np.ndarray:
    """softmax(z) @ v in one pass over blocks of keys; ``z (rows, n)``, ``v (n, d_v)``.

    FlashAttention-2's form: the output is kept unnormalised and divided by ``s`` once,
    at the end. No input checks; ``z`` and ``v`` share one floating dtype.
    """
    m = np.full(z.shape[0], -np.inf, dtype=z.dtype)  # running maximum per row
    s = np.zeros(z.shape[0], dtype=z.dtype)  # running Σ exp(z_j − m) per row
    o = np.zeros((z.shape[0], v.shape[1]), dtype=z.dtype)  # running Σ exp(z_j − m) v_j
    for start in range(0, z.shape[1], block_size):
        block = z[:, start : start + block_size]
        m_new = np.maximum(m, block.max(axis=1))
        rescale = np.exp(m - m_new)
        w = np.exp(block - m_new[:, None])
        s = s * rescale + w.sum(axis=1)
        o = o * rescale[:, None] + w @ v[start : start + block_size]
        m = m_new
    return o / s[:, None]


def _values_for(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    v = as_float_array(values, "values", ndim=2)
    if v.shape[0] != z.shape[1]:
        raise ValueError(
            f"values must have one row per key: logits have {z.shape[1]} keys, "
            f"values shape {v.shape}"
        )
    return v


def online_attention(
    logits: np.ndarray, values: np.ndarray, block_size: int
) -> np.ndarray:
    """softmax(logits) @ values in one streaming pass, as FlashAttention accumulates it.

    ``logits``: ``(n,)`` or ``(rows, n)``; ``values``: ``(n, d_v)``. Per block the
    unnormalised output ``o = Σ exp(z_j − m) v_j`` is rescaled by ``exp(m − m')`` and
    the block's contribution added; ``o / s`` is returned at the end. Shape
    ``(d_v,)`` or ``(rows, d_v)``. Arithmetic in the common dtype of the inputs.
    """
    z, single = _logits(logits)
    v = _values_for(z, values)
    block_size = positive_int(block_size, "block_size")
    dtype = np.result_type(z.dtype, v.dtype)
    z, v = z.astype(dtype, copy=False), v.astype(dtype, copy=False)
    out = _online_attention_core(z, v, block_size)
    return out[0] if single else out


def two_pass_attention(logits: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Reference: the stable softmax over all keys at once, then ``p @ values``.

    Shapes as in :func:`online_attention`.
    """
    z, single = _logits(logits)
    v = _values_for(z, values)
    dtype = np.result_type(z.dtype, v.dtype)
    out = two_pass_softmax(z.astype(dtype, copy=False)) @ v.astype(dtype, copy=False)
    return out[0] if single else out


def block_size_errors(
    logits: np.ndarray, block_sizes: list[int] | np.ndarray
) -> np.ndarray:
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
        ref64 = reference.astype(np.float64)[ok]
        rel = np.abs(p.astype(np.float64)[ok] - ref64) / ref64
        out.append(float(rel.max()))
    return np.array(out)


@dataclass(frozen=True)
class Swamping:
    """What a one-key-at-a-time online sum loses to swamping (see :func:`swamping`).

    ``count``: keys whose term ``exp(z_j − m)`` was below half an ulp of the running
    sum it was added to, so that the addition left the sum unchanged. ``lost``: those
    terms' total, relative to the exact sum ``ℓ``. ``error``: the signed relative error
    of the computed ``ℓ``. ``lost`` and ``error`` are in units of the dtype's eps.
    """

    count: int
    lost: float
    error: float


def swamping(logits: np.ndarray) -> Swamping:
    """Run the online normaliser with block size 1 over a single row ``(n,)`` in its
    dtype, and count the terms the running sum swallowed whole.

    The exact ``ℓ = Σ exp(z_j − m)`` of the same (rounded) logits is evaluated with
    40-digit decimal arithmetic, so ``error`` is the computed sum's own error.
    """
    from decimal import Decimal, localcontext

    z, single = _logits(logits)
    if not single:
        raise ValueError(f"logits must be one row (n,), got shape {z.shape}")
    row = z[0]
    dtype = row.dtype.type
    m, s = dtype(-np.inf), dtype(0)
    lost = []  # logits whose term was swallowed
    for x in row:
        m_new = max(m, x)
        s_old = s * np.exp(dtype(m - m_new)) if np.isfinite(m) else dtype(0)
        term = np.exp(dtype(x - m_new))
        if term < np.spacing(s_old) / 2:  # s_old + term rounds back to s_old
            lost.append(x)
        s, m = s_old + term, m_new
    with localcontext() as ctx:
        ctx.prec = 40
        m_exact = Decimal(float(m))
        exact = sum((Decimal(float(x)) - m_exact).exp() for x in row)
        lost_total = sum(
            ((Decimal(float(x)) - m_exact).exp() for x in lost), Decimal(0)
        )
        eps = Decimal(float(np.finfo(dtype).eps))
        return Swamping(
            count=len(lost),
            lost=float(lost_total / exact / eps),
            error=float((Decimal(float(s)) - exact) / exact / eps),
        )
