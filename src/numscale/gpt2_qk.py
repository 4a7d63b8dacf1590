"""GPT-2's query and key weights: exact logit moments, the key bias, alignment.

Everything here works on plain arrays (the loader, :mod:`numscale.models.gpt2`, provides them),
so it is tested on small random matrices. Shapes: ``H`` heads, ``d`` model width
(``d_model``, 768 in GPT-2 small), ``d_k`` head width (64), ``n`` tokens.

A head sees the LayerNorm output ``u = γ ⊙ x̂ + β`` of a standardized vector ``x̂``.
Folding the gain into the rows of the projections, query and key are affine in ``x̂``::

    q = x̂ A_q + c_q,   A_q = diag(γ) W_Q,   c_q = β W_Q + b_q       (A_q: d × d_k)
    k = x̂ A_k + c_k,   A_k = diag(γ) W_K,   c_k = β W_K + b_k

and the logit is ``s · q·k`` with ``s = 1/√d_k``. :func:`logit_moments` gives its mean
and variance exactly for independent isotropic inputs; :func:`bias_zeroing_change`
measures what removing ``b_k`` or ``b_q`` does to attention weights; and
:func:`numscale.key_bias_toy.train_key_bias_toy` trains a one-head toy to compare Adam
with SGD on ``b_k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numscale.attention import query_key_weights
from numscale.checks import as_float_array, finite_float, positive_int, rng_from

#: Unit roundoff of float32 (half its machine epsilon), for rounding-error bounds.
FLOAT32_UNIT_ROUNDOFF = float(np.finfo(np.float32).eps) / 2
#: Unit roundoff of float64.
FLOAT64_UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2


@dataclass(frozen=True)
class Heads:
    """One block's attention projections, split into heads (Conv1D layout: in × out).

    ``w_q``, ``w_k``, ``w_v``: (H, d, d_k); ``b_q``, ``b_k``, ``b_v``: (H, d_k).
    """

    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    b_q: np.ndarray
    b_k: np.ndarray
    b_v: np.ndarray


# ------------------------------------------------------------------- unpacking


def split_heads(
    c_attn_weight: np.ndarray, c_attn_bias: np.ndarray, n_head: int
) -> Heads:
    """Split ``attn.c_attn`` (weight (d, 3d), bias (3d,)) into per-head Q, K, V parts.

    Columns ``0:d`` are the query, ``d:2d`` the key and ``2d:3d`` the value projection,
    each made of ``n_head`` consecutive blocks of ``d_k = d / n_head`` columns (GPT-2's
    layout). Arrays keep their dtype.
    """
    weight = as_float_array(c_attn_weight, "c_attn_weight", ndim=2)
    bias = as_float_array(c_attn_bias, "c_attn_bias", ndim=1)
    n_head = positive_int(n_head, "n_head")
    d = weight.shape[0]
    if weight.shape[1] != 3 * d:
        raise ValueError(f"c_attn_weight must have shape (d, 3d), got {weight.shape}")
    if bias.shape != (3 * d,):
        raise ValueError(f"c_attn_bias must have shape ({3 * d},), got {bias.shape}")
    if d % n_head:
        raise ValueError(f"n_head must divide the width {d}, got {n_head}")
    d_k = d // n_head

    def heads_of(part: int) -> tuple[np.ndarray, np.ndarray]:
        w = weight[:, part * d : (part + 1) * d].reshape(d, n_head, d_k)
        b = bias[part * d : (part + 1) * d].reshape(n_head, d_k)
        return np.ascontiguousarray(w.transpose(1, 0, 2)), b.copy()

    (w_q, b_q), (w_k, b_k), (w_v, b_v) = (heads_of(p) for p in range(3))
    return Heads(w_q, w_k, w_v, b_q, b_k, b_v)


def fold_layernorm(
    gain: np.ndarray, shift: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(diag(γ) W, β W + b)``: a projection of ``γ ⊙ x̂ + β`` as affine in ``x̂``.

    ``gain`` γ and ``shift`` β: (d,); ``w``: (H, d, d_k); ``b``: (H, d_k). Returns
    ``A`` (H, d, d_k) and ``c`` (H, d_k) in float64, so that
    ``(γ ⊙ x̂ + β) @ w[h] + b[h] == x̂ @ A[h] + c[h]``.
    """
    gain = as_float_array(gain, "gain", ndim=1).astype(np.float64)
    shift = as_float_array(shift, "shift", ndim=1).astype(np.float64)
    w = as_float_array(w, "w", ndim=3).astype(np.float64)
    b = as_float_array(b, "b", ndim=2).astype(np.float64)
    d = w.shape[1]
    if gain.shape != (d,) or shift.shape != (d,):
        raise ValueError(f"gain and shift must have shape ({d},) to match w {w.shape}")
    if b.shape != (w.shape[0], w.shape[2]):
        raise ValueError(f"b must have shape {(w.shape[0], w.shape[2])}, got {b.shape}")
    return gain[None, :, None] * w, np.einsum("i,hij->hj", shift, w) + b


def folded_heads(
    c_attn_weight: np.ndarray,
    c_attn_bias: np.ndarray,
    gain: np.ndarray,
    shift: np.ndarray,
    n_head: int,
) -> tuple[np.ndarray, ...]:
    """One block's queries and keys as affine maps of the standardized input x̂.

    ``c_attn_weight`` (d, 3d), ``c_attn_bias`` (3d,); ``gain`` γ and ``shift`` β of the
    block's ``ln_1``, (d,). Returns ``(a_q, c_q, a_k, c_k)``: (H, d, d_k), (H, d_k),
    (H, d, d_k), (H, d_k) in float64 (:func:`split_heads`, then :func:`fold_layernorm`).
    """
    heads = split_heads(c_attn_weight, c_attn_bias, n_head)
    a_q, c_q = fold_layernorm(gain, shift, heads.w_q, heads.b_q)
    a_k, c_k = fold_layernorm(gain, shift, heads.w_k, heads.b_k)
    return a_q, c_q, a_k, c_k


def _check_affine(a_q, c_q, a_k, c_k) -> tuple[np.ndarray, ...]:
    a_q = as_float_array(a_q, "a_q", ndim=(2, 3)).astype(np.float64)
    a_k = as_float_array(a_k, "a_k", ndim=(2, 3)).astype(np.float64)
    c_q = as_float_array(c_q, "c_q", ndim=(1, 2)).astype(np.float64)
    c_k = as_float_array(c_k, "c_k", ndim=(1, 2)).astype(np.float64)
    if a_q.shape != a_k.shape:
        raise ValueError(
            f"a_q and a_k must have the same shape, got {a_q.shape} and {a_k.shape}"
        )
    expected = a_q.shape[:-2] + a_q.shape[-1:]
    for name, c in (("c_q", c_q), ("c_k", c_k)):
        if c.shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {c.shape}")
    return a_q, c_q, a_k, c_k


# ------------------------------------------------------------ exact moments


def _logit_moments_core(a_q, c_q, a_k, c_k, scale):
    """Mean and variance of s·(x̂ A_q + c_q)·(x̂′ A_k + c_k), x̂ ⟂ x̂′, E=0, Cov=I."""
    gram_q = a_q.swapaxes(-1, -2) @ a_q  # A_qᵀA_q: (…, d_k, d_k)
    gram_k = a_k.swapaxes(-1, -2) @ a_k  # A_kᵀA_k
    bilinear = np.sum(gram_q * gram_k, axis=(-2, -1))  # ‖A_q A_kᵀ‖_F²
    query_side = np.sum((a_q @ c_k[..., None]) ** 2, axis=(-2, -1))  # ‖A_q c_k‖²
    key_side = np.sum((a_k @ c_q[..., None]) ** 2, axis=(-2, -1))  # ‖A_k c_q‖²
    mean = scale * np.sum(c_q * c_k, axis=-1)
    variance = scale**2 * (bilinear + query_side + key_side)
    return mean, variance


def logit_moments(
    a_q: np.ndarray, c_q: np.ndarray, a_k: np.ndarray, c_k: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and variance of the logit ``s·(x̂ A_q + c_q)·(x̂′ A_k + c_k)``.

    For independent ``x̂, x̂′`` with mean 0 and covariance I (any distribution: only
    second moments enter). ``a_q``, ``a_k``: (d, d_k) or (H, d, d_k); ``c_q``, ``c_k``:
    (d_k,) or
    (H, d_k). Returns ``(mean, variance)``, scalars or (H,) arrays, in float64:
    ``mean = s c_q·c_k`` and
    ``variance = s²(‖A_q A_kᵀ‖_F² + ‖A_q c_kᵀ‖² + ‖A_k c_qᵀ‖²)``, computed through
    d_k × d_k Gram matrices (``‖A_q A_kᵀ‖_F² = tr(A_qᵀA_q A_kᵀA_k)``).
    """
    a_q, c_q, a_k, c_k = _check_affine(a_q, c_q, a_k, c_k)
    scale = finite_float(scale, "scale", positive=True)
    return _logit_moments_core(a_q, c_q, a_k, c_k, scale)


def self_logit_mean(
    a_q: np.ndarray, c_q: np.ndarray, a_k: np.ndarray, c_k: np.ndarray, scale: float
) -> np.ndarray:
    """Mean logit of a token with itself: ``s(tr(A_q A_kᵀ) + c_q·c_k)`` (x̂′ = x̂).

    Shapes as in :func:`logit_moments`. The difference from the different-token mean
    ``s c_q·c_k`` is ``s tr(A_q A_kᵀ)``, the part that aligned queries and keys add.
    """
    a_q, c_q, a_k, c_k = _check_affine(a_q, c_q, a_k, c_k)
    scale = finite_float(scale, "scale", positive=True)
    return scale * (np.sum(a_q * a_k, axis=(-2, -1)) + np.sum(c_q * c_k, axis=-1))


def alignment(a_q: np.ndarray, a_k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How aligned the form ``M = A_q A_kᵀ`` (d × d) is; inputs (d, d_k) or (H, d, d_k).

    Returns ``(symmetric_fraction, trace_ratio)``: ``‖(M + Mᵀ)/2‖_F² / ‖M‖_F²`` (in
    [0, 1]; the antisymmetric part holds the rest, since the two parts are orthogonal)
    and ``tr(M) / ‖M‖_F`` (in [−√d_k, √d_k] since M has rank ≤ d_k; +√d_k exactly when
    M is symmetric positive semi-definite with d_k equal eigenvalues). Computed through
    d_k × d_k matrices: ``tr(M²) = tr((A_kᵀA_q)²)``.
    """
    a_q = as_float_array(a_q, "a_q", ndim=(2, 3)).astype(np.float64)
    a_k = as_float_array(a_k, "a_k", ndim=(2, 3)).astype(np.float64)
    if a_q.shape != a_k.shape:
        raise ValueError(
            f"a_q and a_k must have the same shape, got {a_q.shape} and {a_k.shape}"
        )
    gram_q = a_q.swapaxes(-1, -2) @ a_q
    gram_k = a_k.swapaxes(-1, -2) @ a_k
    frob2 = np.sum(gram_q * gram_k, axis=(-2, -1))
    if np.any(frob2 <= 0):
        raise ValueError("a_q and a_k must give a nonzero product A_q A_kᵀ")
    cross = a_k.swapaxes(-1, -2) @ a_q  # A_kᵀA_q: (…, d_k, d_k)
    trace_m2 = np.sum(cross * cross.swapaxes(-1, -2), axis=(-2, -1))
    trace_m = np.sum(a_q * a_k, axis=(-2, -1))
    return (1 + trace_m2 / frob2) / 2, trace_m / np.sqrt(frob2)


# ---------------------------------------------------------------- probe draws


def probe_logits(
    a_q: np.ndarray,
    c_q: np.ndarray,
    a_k: np.ndarray,
    c_k: np.ndarray,
    scale: float,
    n_pairs: int,
    seed,
    *,
    same_token: bool = False,
    dtype=np.float32,
) -> np.ndarray:
    """Logits of ``n_pairs`` seeded probe pairs: (H, n_pairs), or (n_pairs,) for a head.

    ``x̂`` and ``x̂′`` have independent standard-normal coordinates (``same_token``: the
    key input is the query input itself). All heads see the same draws. The products are
    computed in ``dtype`` (float32 by default: its rounding, ~1e-7 relative, is far
    below the sampling error of any feasible number of pairs); the result is float64.
    """
    a_q, c_q, a_k, c_k = _check_affine(a_q, c_q, a_k, c_k)
    scale = finite_float(scale, "scale", positive=True)
    n_pairs = positive_int(n_pairs, "n_pairs")
    rng = rng_from(seed)
    single = a_q.ndim == 2
    if single:
        a_q, a_k, c_q, c_k = a_q[None], a_k[None], c_q[None], c_k[None]
    n_head, d, d_k = a_q.shape
    x = rng.standard_normal((n_pairs, d), dtype=np.float32).astype(dtype)
    x_key = (
        x
        if same_token
        else rng.standard_normal((n_pairs, d), dtype=np.float32).astype(dtype)
    )
    flat_q = a_q.transpose(1, 0, 2).reshape(d, n_head * d_k).astype(dtype)
    flat_k = a_k.transpose(1, 0, 2).reshape(d, n_head * d_k).astype(dtype)
    q = (x @ flat_q).reshape(n_pairs, n_head, d_k).astype(np.float64) + c_q
    k = (x_key @ flat_k).reshape(n_pairs, n_head, d_k).astype(np.float64) + c_k
    logits = scale * np.einsum("nhj,nhj->hn", q, k)
    return logits[0] if single else logits


def variance_standard_error(samples: np.ndarray) -> np.ndarray:
    """Standard error of the sample variance along the last axis: ``√((m4 − s⁴)/N)``.

    ``m4`` is the sample fourth central moment: valid for any distribution with a finite
    fourth moment (the delta method), so heavy-tailed logits get a wider error.
    """
    samples = as_float_array(samples, "samples", ndim=(1, 2)).astype(np.float64)
    n = samples.shape[-1]
    if n < 2:
        raise ValueError(f"samples must hold at least 2 draws, got {n}")
    centred = samples - samples.mean(axis=-1, keepdims=True)
    m2 = np.mean(centred**2, axis=-1)
    m4 = np.mean(centred**4, axis=-1)
    return np.sqrt(np.maximum(m4 - m2**2, 0.0) / n)


# -------------------------------------------------------------- the key bias


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 (max subtracted first)."""
    z = as_float_array(logits, "logits").astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def project(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``u @ w[h]`` for every head: (n, d), (H, d, d_k) -> (H, n, d_k), one matmul."""
    n_head, d, d_k = w.shape
    flat = u @ w.transpose(1, 0, 2).reshape(d, n_head * d_k)
    heads = flat.reshape(u.shape[0], n_head, d_k).transpose(1, 0, 2)
    return np.ascontiguousarray(heads)


def _bias_zeroing_core(u, w_q, b_q, w_k, b_k, scale):
    """Attention weights p, and |Δp| when b_k or b_q is set to 0 (logits in u.dtype)."""
    q_lin, k_lin = project(u, w_q), project(u, w_k)  # (H, n, d_k), no biases
    q, k = q_lin + b_q[:, None, :], k_lin + b_k[:, None, :]
    p = softmax_rows(scale * (q @ k.swapaxes(-1, -2)))  # (H, n queries, n keys)
    p_no_key_bias = softmax_rows(scale * (q @ k_lin.swapaxes(-1, -2)))
    p_no_query_bias = softmax_rows(scale * (q_lin @ k.swapaxes(-1, -2)))
    return p, np.abs(p_no_key_bias - p), np.abs(p_no_query_bias - p)


def _checked_bias_inputs(u, w_q, b_q, w_k, b_k, scale):
    """The arguments of :func:`bias_zeroing_change`, checked (shapes there)."""
    u = as_float_array(u, "u", ndim=2)
    w_q, w_k = query_key_weights(w_q, w_k, u.shape[1], ndim=3)
    b_q = as_float_array(b_q, "b_q", ndim=2)
    b_k = as_float_array(b_k, "b_k", ndim=2)
    expected = (w_q.shape[0], w_q.shape[2])
    for name, b in (("b_q", b_q), ("b_k", b_k)):
        if b.shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {b.shape}")
    dtypes = {a.dtype for a in (u, w_q, b_q, w_k, b_k)}
    if len(dtypes) != 1:
        raise TypeError(
            "u, w_q, b_q, w_k and b_k must share one dtype, got "
            f"{sorted(map(str, dtypes))}"
        )
    return u, w_q, b_q, w_k, b_k, finite_float(scale, "scale", positive=True)


def bias_zeroing_change(
    u: np.ndarray,
    w_q: np.ndarray,
    b_q: np.ndarray,
    w_k: np.ndarray,
    b_k: np.ndarray,
    scale: float,
) -> tuple[np.ndarray, ...]:
    """What zeroing each bias does to the attention weights of the tokens ``u``.

    ``u``: (n, d) inputs (LayerNorm outputs); ``w_q``, ``w_k``: (H, d, d_k); ``b_q``,
    ``b_k``: (H, d_k); all of one float dtype, in which q, k and the logits are computed
    (the softmax is then taken in float64). Returns ``(p, change_without_key_bias,
    change_without_query_bias)``, each (H, n, n): every query attends to all n tokens.
    """
    u, w_q, b_q, w_k, b_k, scale = _checked_bias_inputs(u, w_q, b_q, w_k, b_k, scale)
    return _bias_zeroing_core(u, w_q, b_q, w_k, b_k, scale)


def _gamma(n: int, unit_roundoff: float) -> float:
    """Higham's γ_n = n·u / (1 − n·u): bound on the relative error of n roundings."""
    if n * unit_roundoff >= 1:
        raise ValueError(f"n·u must be < 1, got n = {n}")
    return n * unit_roundoff / (1 - n * unit_roundoff)


def key_bias_rounding_bound(
    u: np.ndarray,
    w_q: np.ndarray,
    b_q: np.ndarray,
    w_k: np.ndarray,
    b_k: np.ndarray,
    scale: float,
) -> np.ndarray:
    """Worst-case bound on ``change_without_key_bias`` of :func:`bias_zeroing_change`.

    In exact arithmetic both attention weights are equal. In floating point with unit
    roundoff ``u_r`` (of the inputs' dtype), each q and k coordinate is a length-d dot
    product plus a bias, off by at most ``γ_{d+1}(|u||W| + |b|)``; the logit q·k is a
    length-d_k dot product of the rounded vectors. This bounds each row's logit error
    Δ (both computations); a softmax whose logits move by at most Δ moves each weight by
    a factor within ``e^{±2Δ}``, so ``|p − p′| ≤ p_exact (e^{2Δ} − 1 + e^{2Δ′} − 1)``,
    with ``p_exact ≤ p e^{2Δ}``. A float64 term covers the float64 softmax. (H, n, n).
    """
    u, w_q, b_q, w_k, b_k, scale = _checked_bias_inputs(u, w_q, b_q, w_k, b_k, scale)
    roundoff = float(np.finfo(u.dtype).eps) / 2
    d, d_k = w_q.shape[1], w_q.shape[2]
    g_proj, g_dot = _gamma(d + 1, roundoff), _gamma(d_k, roundoff)
    u64, wq64, wk64 = (np.abs(a.astype(np.float64)) for a in (u, w_q, w_k))
    bq64, bk64 = np.abs(b_q.astype(np.float64)), np.abs(b_k.astype(np.float64))
    q_lin, k_lin = project(u, w_q), project(u, w_k)
    q = np.abs((q_lin + b_q[:, None, :]).astype(np.float64))
    k_with = np.abs((k_lin + b_k[:, None, :]).astype(np.float64))
    k_without = np.abs(k_lin.astype(np.float64))
    err_q = g_proj * (project(u64, wq64) + bq64[:, None, :])  # bound on |q̂ − q|
    err_k_without = g_proj * project(u64, wk64)
    err_k_with = err_k_without + g_proj * bk64[:, None, :]

    def row_logit_error(k_abs, err_k):
        # |q̂·k̂ − q·k| ≤ E_q·|k̂| + (|q̂| + E_q)·E_k, plus γ_{d_k}|q̂|·|k̂| for the dot
        total = (
            err_q @ k_abs.swapaxes(-1, -2)
            + (q + err_q) @ err_k.swapaxes(-1, -2)
            + g_dot * (q @ k_abs.swapaxes(-1, -2))
        )
        return scale * total.max(axis=-1, keepdims=True)  # (H, n, 1)

    delta_with = row_logit_error(k_with, err_k_with)
    delta_without = row_logit_error(k_without, err_k_without)
    p, _, _ = _bias_zeroing_core(u, w_q, b_q, w_k, b_k, scale)
    n = u.shape[0]
    softmax64 = 2 * _gamma(n + 3, FLOAT64_UNIT_ROUNDOFF)
    return (
        p
        * np.exp(2 * delta_with)
        * (np.expm1(2 * delta_with) + np.expm1(2 * delta_without) + softmax64)
    )


def probe_inputs(
    gain: np.ndarray, shift: np.ndarray, n: int, seed, dtype=np.float32
) -> np.ndarray:
    """``n`` probe tokens ``γ ⊙ x̂ + β``, standard-normal ``x̂``: (n, d), ``dtype``."""
    gain = as_float_array(gain, "gain", ndim=1)
    shift = as_float_array(shift, "shift", ndim=1)
    if gain.shape != shift.shape:
        raise ValueError(
            f"gain and shift must have the same shape, got {gain.shape} "
            f"and {shift.shape}"
        )
    n = positive_int(n, "n")
    x = rng_from(seed).standard_normal((n, gain.size))
    return (gain.astype(np.float64) * x + shift.astype(np.float64)).astype(dtype)
