"""The softmax Jacobian, its size as logits grow, and the cross-entropy gradient.

For p = softmax(z) the Jacobian is J = ∂p/∂z = diag(p) − p pᵀ (symmetric, n × n). Its
squared Frobenius norm has the closed form ‖J‖_F² = Σ_i p_i² [(1 − p_i)² + Σ_{j≠i} p_j²]
(= Σp² − 2Σp³ + (Σp²)²), which needs no n × n matrix. Shapes: logits ``(..., n)``; Jacobians ``(..., n, n)``; norms ``(...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale.checks import as_float_array, positive_int, rng_from, spawn_rngs
from numscale.softmax import softmax


def _logits(logits: np.ndarray) -> np.ndarray:
    return as_float_array(logits, "logits", ndim=tuple(range(1, 33)))


def jacobian(logits: np.ndarray) -> np.ndarray:
    """diag(p) − p pᵀ for p = softmax(logits) along the last axis: ``(..., n) -> (..., n, n)``."""
    p = softmax(_logits(logits))
    return p[..., :, None] * np.eye(p.shape[-1], dtype=p.dtype) - p[..., :, None] * p[..., None, :]


def jacobian_frobenius(logits: np.ndarray) -> np.ndarray:
    """‖diag(p) − p pᵀ‖_F per row, without forming the n × n matrix: ``(..., n) -> (...)``.

    Expanding the squares, ‖J‖_F² = Σ_i p_i² [(1 − p_i)² + Σ_{j≠i} p_j²] (diagonal plus
    off-diagonal entries). Written as Σp² − 2Σp³ + (Σp²)² it would cancel catastrophically
    for a nearly one-hot row; here every term is non-negative, and the two quantities
    that could cancel for the largest entry k, 1 − p_k and Σ_{j≠k} p_j², are summed
    directly over j ≠ k. Relative error a few n·eps for every row, however saturated, until
the squares underflow (‖J‖_F below about 1e-154 in float64 returns 0).

    It is 0 for a one-hot p and √(n − 1)/n for a uniform p over n keys. J is positive
    semidefinite with trace 1 − Σp², so ‖J‖_F ≤ tr J < 1 for every p.
    """
    z = _logits(logits)
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    total = np.sum(e, axis=-1, keepdims=True)
    p = e / total
    top = np.argmax(z, axis=-1)[..., None]
    is_top = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(is_top, top, True, axis=-1)
    p_rest = np.where(is_top, 0.0, p)                                 # p with the top entry removed
    one_minus = np.where(is_top, np.sum(np.where(is_top, 0.0, e), axis=-1, keepdims=True) / total, 1.0 - p)
    sq = np.sum(p**2, axis=-1, keepdims=True)
    others_sq = np.where(is_top, np.sum(p_rest**2, axis=-1, keepdims=True), sq - p**2)
    return np.sqrt(np.sum(p**2 * (one_minus**2 + others_sq), axis=-1))


def autograd_jacobian(logits: np.ndarray) -> np.ndarray:
    """The Jacobian of ``torch.softmax`` from torch autograd, in float64: ``(n,) -> (n, n)``."""
    z = as_float_array(logits, "logits", ndim=1)
    zt = torch.from_numpy(z.astype(np.float64))
    return torch.autograd.functional.jacobian(lambda x: torch.softmax(x, dim=0), zt).numpy()


def qk_logit_rows(d: int, n_keys: int, n_matrices: int, seed: int | np.random.Generator, scale: str) -> np.ndarray:
    """Attention logit rows from ``n_matrices`` independent products Q Kᵀ.

    Each product has ``n_keys`` queries and ``n_keys`` keys with standard-normal entries
    of length ``d``; ``scale`` is ``"unscaled"`` (q·k) or ``"sqrt_d"`` (q·k/√d).
    Shape ``(n_matrices, n_keys, n_keys)``: rows of one matrix share their keys.
    """
    d = positive_int(d, "d")
    n_keys = positive_int(n_keys, "n_keys")
    n_matrices = positive_int(n_matrices, "n_matrices")
    if scale not in ("unscaled", "sqrt_d"):
        raise ValueError(f"scale must be 'unscaled' or 'sqrt_d', got {scale!r}")
    rng = rng_from(seed)
    q = rng.standard_normal((n_matrices, n_keys, d))
    k = rng.standard_normal((n_matrices, n_keys, d))
    s = q @ np.swapaxes(k, 1, 2)
    return s / np.sqrt(d) if scale == "sqrt_d" else s


@dataclass(frozen=True)
class NormSweep:
    """Mean ‖J‖_F per dimension and its standard error (over independent matrices)."""

    dims: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray


def jacobian_norm_sweep(
    dims: Sequence[int], scale: str, seed: int, n_keys: int = 50, n_matrices: int = 200
) -> NormSweep:
    """Mean Frobenius norm of the softmax Jacobian of attention rows, for each d in ``dims``.

    For each d, ``n_matrices`` independent Q Kᵀ products (``n_keys`` × ``n_keys``, see
    :func:`qk_logit_rows`) give ``n_matrices · n_keys`` rows. Rows of one matrix share
    keys and are correlated, so the standard error is that of the ``n_matrices``
    per-matrix means: std(means)/√n_matrices. Each d draws from its own child seed.
    """
    dims_arr = np.array([positive_int(int(x), "dims") for x in dims])
    if dims_arr.size == 0:
        raise ValueError("dims must not be empty")
    rngs = spawn_rngs(seed, dims_arr.size)
    means, errs = [], []
    for d, rng in zip(dims_arr, rngs):
        rows = qk_logit_rows(int(d), n_keys, n_matrices, rng, scale)
        per_matrix = jacobian_frobenius(rows).mean(axis=1)
        means.append(per_matrix.mean())
        errs.append(per_matrix.std(ddof=1) / np.sqrt(n_matrices))
    return NormSweep(dims=dims_arr, mean=np.array(means), stderr=np.array(errs))


def crossover(dims: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """First d at which ``a − b`` changes sign, interpolated linearly in log d.

    ``dims``, ``a``, ``b``: ``(k,)``. Raises ``ValueError`` if the sign never changes.
    """
    x = np.log(as_float_array(np.asarray(dims, dtype=float), "dims", ndim=1))
    diff = as_float_array(a, "a", ndim=1) - as_float_array(b, "b", ndim=1)
    if diff.shape != x.shape:
        raise ValueError(f"dims, a and b must have the same length, got {x.size} and {diff.size}")
    change = np.nonzero(np.sign(diff[:-1]) != np.sign(diff[1:]))[0]
    if change.size == 0:
        raise ValueError("a − b does not change sign over dims")
    i = int(change[0])
    t = diff[i] / (diff[i] - diff[i + 1])
    return float(np.exp(x[i] + t * (x[i + 1] - x[i])))


def cross_entropy_grad(logits: np.ndarray, target: int) -> np.ndarray:
    """Gradient of −log softmax(z)[target] with respect to z: p − onehot(target). Shape ``(n,)``."""
    z = as_float_array(logits, "logits", ndim=1)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"target must be an integer class index, got {type(target).__name__}")
    if not 0 <= target < z.size:
        raise ValueError(f"target must be in [0, {z.size}), got {target}")
    g = softmax(z)
    g[target] -= 1.0
    return g


def jacobian_norm_vs_std(
    stds: Sequence[float], seed: int, n_keys: int = 50, n_rows: int = 2000
) -> NormSweep:
    """Mean ‖J‖_F of rows of ``n_keys`` iid N(0, σ²) logits, for each σ in ``stds``.

    One set of standard-normal rows ``(n_rows, n_keys)`` is drawn and scaled by each σ
    (common random numbers: the curve is smooth in σ). ``dims`` of the result holds
    the σ values; ``stderr`` is std/√n_rows (rows are independent).
    """
    sigmas = as_float_array(np.asarray(stds, dtype=float), "stds", ndim=1)
    if np.any(sigmas < 0):
        raise ValueError("stds must be >= 0")
    n_keys = positive_int(n_keys, "n_keys")
    n_rows = positive_int(n_rows, "n_rows", minimum=2)
    base = rng_from(seed).standard_normal((n_rows, n_keys))
    norms = np.stack([jacobian_frobenius(s * base) for s in sigmas])
    return NormSweep(dims=sigmas, mean=norms.mean(axis=1), stderr=norms.std(axis=1, ddof=1) / np.sqrt(n_rows))


@dataclass(frozen=True)
class ScaleSweep:
    """Gradient sizes for one logit row multiplied by each factor in ``alphas``.

    ``jacobian``: ‖J‖_F of softmax(α z); ``ce_wrong`` / ``ce_right``: ‖p − y‖ when the
    target is the smallest / the largest logit of z. All shape ``(k,)``.
    """

    alphas: np.ndarray
    jacobian: np.ndarray
    ce_wrong: np.ndarray
    ce_right: np.ndarray


def logit_scale_sweep(logits: np.ndarray, alphas: Sequence[float]) -> ScaleSweep:
    """Softmax-Jacobian and cross-entropy-gradient norms as one row ``(n,)`` is scaled by α ≥ 0."""
    z = as_float_array(logits, "logits", ndim=1)
    a = as_float_array(np.asarray(alphas, dtype=float), "alphas", ndim=1)
    if np.any(a < 0):
        raise ValueError("alphas must be >= 0")
    wrong, right = int(np.argmin(z)), int(np.argmax(z))
    jac = np.array([float(jacobian_frobenius(x * z)) for x in a])
    ce_w = np.array([np.linalg.norm(cross_entropy_grad(x * z, wrong)) for x in a])
    ce_r = np.array([np.linalg.norm(cross_entropy_grad(x * z, right)) for x in a])
    return ScaleSweep(alphas=a, jacobian=jac, ce_wrong=ce_w, ce_right=ce_r)
